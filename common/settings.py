"""The one settings engine: each setting declared once, read once, at the edge, into typed values.

A `Setting` row holds everything about one setting: its environment variable, its flag twin
(`--sync-interval` for SYNC_INTERVAL), its parser, its default, its one-line meaning, and whether
it is a secret (never shown in an error). A process declares its rows in one `SettingsTable`,
which gives argparse the flags (the sidecar's; serving has none), reads flag before variable
before default (a blank value is unset), gives the parsed default for code that builds its
configuration by hand, and raises the process's own configuration error naming the variable (and
flag) and what it expects. env.example and the docs' settings tables are checked against the
rows (tests/unit/test_settings_docs.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

Parser = Callable[[str], Any]
Config = TypeVar("Config")
ROW = "setting"  # a dataclass field's metadata key: the row it is read from


@dataclass(frozen=True)
class Setting:
    """One setting: its variable, its flag, how to parse it, its default and its meaning."""

    env: str
    parse: Parser
    default: str | None
    help: str
    secret: bool = False
    empty_means_off: bool = False  # an empty value is kept (turns the feature off), not defaulted

    @property
    def flag(self) -> str:
        """The CLI twin of the variable, e.g. --sync-interval for SYNC_INTERVAL."""
        return "--" + self.env.lower().replace("_", "-")

    @property
    def dest(self) -> str:
        """The attribute the flag is parsed into."""
        return self.env.lower()


class SettingsTable(Mapping[str, Setting]):
    """A process's settings by variable name, and the reading of them."""

    def __init__(self, settings: Iterable[Setting], error: Callable[[str], Exception],
                 flags: bool = True) -> None:
        self._rows = {s.env: s for s in settings}
        self._error = error  # the process's ConfigError: one line, exit 2
        self._flags = flags  # False: environment only, and errors name no flag

    def named(self, name: str) -> str:
        """How errors name a setting: NAME (or --flag), or NAME alone in a table without flags."""
        return f"{name} (or {self[name].flag})" if self._flags else name

    def __getitem__(self, name: str) -> Setting:
        return self._rows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def add_flags(self, parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
        """Give a parser the flag twins of the named settings."""
        for name in names:
            setting = self[name]
            text = f"{setting.help} [env {name}" + (f", default {setting.default}]"
                                                     if setting.default is not None else "]")
            # argparse formats help with %: a literal one ("±10% jitter") must be doubled
            parser.add_argument(setting.flag, dest=setting.dest, metavar=name, default=None,
                                help=text.replace("%", "%%"))

    def read(self, args: argparse.Namespace | None, environ: Mapping[str, Any],
             names: Iterable[str]) -> dict[str, Any]:
        """Parse the named settings, flag before variable before default; None where unset.

        Values are stripped: a blank one is unset (its default), unless the setting keeps an
        empty value to turn its feature off.
        """
        values: dict[str, Any] = {}
        for name in names:
            setting = self[name]
            raw = getattr(args, setting.dest, None)
            if raw is None:
                raw = environ.get(name)
            raw = None if raw is None else str(raw).strip()
            if raw is None or (raw == "" and not setting.empty_means_off):
                raw = setting.default
            values[name] = None if raw is None else self.parse(setting, raw)
        return values

    def parse(self, setting: Setting, raw: str) -> Any:
        """One value through its parser ('' kept as is); the error names the setting."""
        try:
            return setting.parse(raw) if raw != "" else raw
        except ValueError as exc:
            shown = "(hidden)" if setting.secret else repr(raw)
            raise self._error(f"{self.named(setting.env)} is {shown}: expected {exc}") from None

    def default(self, name: str) -> Any:
        """The setting's default as its parser reads it (None when it has none)."""
        setting = self[name]
        return None if setting.default is None else self.parse(setting, setting.default)

    def field(self, name: str, required: bool = False) -> Any:
        """A dataclass field read from the row NAME, its default the row's (parsed; none when
        required): the only default. A secret's value stays out of repr."""
        metadata = {ROW: name}
        if required:
            return dataclasses.field(metadata=metadata)
        return dataclasses.field(default=self.default(name), repr=not self[name].secret,
                                 metadata=metadata)

    def read_into(self, cls: type[Config], environ: Mapping[str, Any], **given: Any) -> Config:
        """cls with each of its `field`s read from its row (one without a default is required);
        the `given` fields (worked out by the caller) as given, their rows left unread."""
        fields = [field for field in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if ROW in field.metadata and field.name not in given]
        values = self.read(None, environ, [field.metadata[ROW] for field in fields])
        self.require(values, *[field.metadata[ROW] for field in fields
                               if field.default is dataclasses.MISSING])
        return cls(**{field.name: values[field.metadata[ROW]] for field in fields}, **given)

    def require(self, values: Mapping[str, Any], *names: str) -> None:
        """Raise the configuration error naming the first required setting that is unset."""
        for name in names:
            if values.get(name) in (None, ""):
                raise self._error(f"{self.named(name)} is required: {self[name].help}")


def number(value: str, kind: type[int] | type[float], minimum: float, strict: bool,
           expects: str) -> Any:
    """A finite number of a kind, at least (or above, when strict) a minimum."""
    try:
        found = kind(value)
    except ValueError:
        raise ValueError(expects) from None
    if not math.isfinite(found) or found < minimum or (strict and found == minimum):
        raise ValueError(expects)
    return found


def positive_float(value: str) -> float:
    """A number > 0."""
    return float(number(value, float, 0, True, "a number > 0"))


def positive_int(value: str) -> int:
    """A whole number >= 1."""
    return int(number(value, int, 0, True, "a whole number >= 1"))


def non_negative_float(value: str) -> float:
    """A number >= 0."""
    return float(number(value, float, 0, False, "a number >= 0"))


def non_negative_int(value: str) -> int:
    """A whole number >= 0."""
    return int(number(value, int, 0, False, "a whole number >= 0"))


def fraction(value: str) -> float:
    """A number from 0 to 1."""
    found = float(number(value, float, 0, False, "a number from 0 to 1"))
    if found > 1:
        raise ValueError("a number from 0 to 1")
    return found


def name_list(value: str) -> tuple[str, ...]:
    """Comma-separated names, blanks and repeats dropped; at least one."""
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise ValueError("a comma-separated list of registry model names")
    return names


def listen(value: str) -> tuple[str, int]:
    """HOST:PORT (an empty host: 127.0.0.1)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:8090 (port 0 disables it)")
    return host or "127.0.0.1", int(port)


def choice(*options: str) -> Parser:
    """One of the options, exactly."""
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError("one of " + ", ".join(options))
        return value

    return parse


def flag(value: str) -> bool:
    """On or off: true/false, 1/0, yes/no, on/off (any case)."""
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def http_url(value: str) -> str:
    """An http(s) URL with a host, path kept, without its trailing slash."""
    try:
        url_root(value)  # the same check as a Comet URL's
    except ValueError:
        raise ValueError("an http(s) URL such as http://127.0.0.1:8080") from None
    return value.strip().rstrip("/")


def url_root(value: str) -> str:
    """Keep only scheme://host:port of a URL, as the comet_ml SDK does with COMET_URL_OVERRIDE."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("an http(s) URL such as http://127.0.0.1:8080/clientlib/")
    return f"{parts.scheme}://{parts.netloc}"
