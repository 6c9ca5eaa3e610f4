"""The registry-sync command line: run, once, status, describe, register, promote."""

from __future__ import annotations

import argparse
import sys

from model_contract import logs

from . import __version__
from .errors import ConfigError, RegistrySyncError, Stopped

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="registry-sync", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import commands as sync_commands
    from . import describe
    from .registries.comet import promote, register

    sync_commands.add_parsers(commands)
    describe.add_parser(commands)
    register.add_parser(commands)
    promote.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; errors become one line on stderr and an exit code, never a traceback."""
    args = build_parser().parse_args(argv)
    # one-shot commands talk to people: only warnings and errors as log lines, unless asked
    quiet = getattr(args, "quiet", False)
    logs.setup(getattr(args, "log_level", None) or ("warning" if quiet else "info"))
    try:
        return args.handler(args) or EXIT_OK
    except ConfigError as exc:
        print(f"registry-sync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RegistrySyncError as exc:
        print(f"registry-sync: {logs.mask(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, Stopped):
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
