"""registry-sync promote: set a version's status (or add a tag), as the Comet UI does.

The status is re-read after the change: where review is required, a member's change is only a
request an owner approves. Exit codes: 0 changed (or only tagged), 3 requested and pending
approval, 1 the registry did not apply it (neither changed nor pending), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import os
import sys

from model_contract import logs

from ... import config
from .approvals import pending_for_version
from .client import CometClient
from .finder import VersionFinder

log = logs.get(__name__)

PROMOTE_NAMES = [*config.COMET_NAMES, "LOG_LEVEL"]
EXIT_CHANGED, EXIT_NOT_APPLIED, EXIT_PENDING = 0, 1, 3
NO_STATUS = "None"


def run(args: argparse.Namespace) -> int:
    """Promote MODEL VERSION; optionally demote the versions that had the status before."""
    settings = config.comet_settings(config.read(args, os.environ, PROMOTE_NAMES))
    logs.redact(settings.api_key)
    client = CometClient(settings)
    previous = ([v for v in client.find_versions(args.model, status=args.status)
                 if v != args.version] if args.status else [])
    for tag in args.tag:
        client.add_tag(args.model, args.version, tag)
    if args.status:
        client.set_status(args.model, args.version, args.status)
        # under review, the change may be a request: read the status where the SDK reads it
        if client.version_details(args.model, args.version).status != args.status:
            return _not_changed(client, args)  # nothing demoted for a mere request
    if args.demote_to is not None:
        for version in previous:
            client.set_status(args.model, version, args.demote_to)
            print(f"demoted {args.model} {version} to {args.demote_to}")
    found = VersionFinder(client, ()).find(args.model, args.status or "Production")
    chosen = found.version
    log.info("model_promoted", model=args.model, version=args.version, status=args.status,
             tags=args.tag)
    print(_summary(f"{settings.workspace}/{args.model}", args, chosen.version if chosen else None))
    return EXIT_CHANGED


def _not_changed(client: CometClient, args: argparse.Namespace) -> int:
    """The status did not change: a request pending approval, or a change not applied."""
    pending = pending_for_version(client, args.model, args.version)
    if pending is not None and pending.status == args.status:
        log.info("model_promotion_requested", model=args.model, version=args.version,
                 status=args.status)
        print(f"{args.model} {args.version} to {args.status}: requested; pending approval by "
              "a workspace owner (the sidecar keeps serving the current status until then)")
        return EXIT_PENDING
    actual = client.version_details(args.model, args.version).status
    print(f"{args.model} {args.version} to {args.status}: not applied, its status is still "
          f"{actual}", file=sys.stderr)
    return EXIT_NOT_APPLIED


def _summary(model: str, args: argparse.Namespace, chosen: str | None) -> str:
    """One line saying what changed; status "None" is the absence of a status, not a name."""
    cleared = args.status == NO_STATUS
    line = f"{'set' if cleared else 'promoted'} {model} {args.version}"
    if cleared:
        line += " to no status (None)"
    elif args.status:
        line += f" to {args.status}: changed"
    if args.tag:
        line += f" with tags {', '.join(args.tag)}"
    if chosen and args.status and not cleared:
        line += f"; the {args.status} version is now {chosen}"
    return line


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add `promote` to the CLI."""
    sub = commands.add_parser("promote", help="set a version's status / add a tag",
                              description=__doc__.split("\n\n")[1].replace("\n", " "))
    sub.add_argument("model", metavar="MODEL", help="registry model name")
    sub.add_argument("version", metavar="VERSION", help="version to promote")
    sub.add_argument("--status", default="Production", help="status to set (default Production;"
                     " empty to only tag)")
    sub.add_argument("--tag", action="append", default=[], help="a tag to add (repeatable)")
    sub.add_argument("--demote-to", default=None, metavar="STATUS",
                     help="give the versions that had --status before this status, e.g. None")
    config.add_flags(sub, PROMOTE_NAMES)
    sub.set_defaults(handler=run, quiet=True)
