"""Fault injection and request counting, so tests can make the local registry misbehave.

A rule is a JSON object; every key but `path` is optional:

    {"path": "item/download",      substring of the request path that the rule matches
     "model": "clf",               only requests about this registry model
     "method": "GET",              only this HTTP method
     "user_agent": "registry-sync",  only requests whose User-Agent contains this
     "skip": 2,                    let this many matching requests through first
     "times": 2,                   expires after this many matches (null: never)
     "status": 503,                answer this status with a Comet error body
     "retry_after": 1,             with `Retry-After: 1`
     "retry_after_custom": 2,      with `Retry-After-Custom: 2`
     "stall": 0.5,                 sleep this many seconds before sending any byte
     "drip_bps": 65536,            send the body at this many bytes per second
     "cut_after": 1000,            close the connection after this many body bytes
     "chunked": true,              send the body without Content-Length (chunked encoding)
     "corrupt": true,              flip one byte of the body (the one at corrupt_offset)
     "corrupt_offset": 100,        default: the middle of the body
     "file_size_delta": 5,         add this to every "fileSize" in a JSON answer
     "model_name": "other",        answer with this top-level "modelName" (a foreign model)
     "version_name": "9.9.9",      answer with this top-level "version" (another version)
     "asset_experiment_key": "f0"} give every asset this experimentKey, in its link too

The first live rule that matches a request applies to it, all its effects at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

_NUMBERS = (int, float)


@dataclass
class Rule:
    """One fault rule; see the module docstring for the meaning of each field."""

    path: str
    model: str | None = None
    method: str | None = None
    user_agent: str | None = None
    skip: int | None = None
    times: int | None = None
    status: int | None = None
    retry_after: float | None = None
    retry_after_custom: float | None = None
    stall: float | None = None
    drip_bps: int | None = None
    cut_after: int | None = None
    chunked: bool = False
    corrupt: bool = False
    corrupt_offset: int | None = None
    file_size_delta: int | None = None
    model_name: str | None = None
    version_name: str | None = None
    asset_experiment_key: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Rule:
        """Build a rule from its JSON object; ValueError names what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("a rule is an object with at least a string 'path'")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown rule fields: {', '.join(unknown)}")
        rule = cls(**data)
        rule._check()
        return rule

    def _check(self) -> None:
        for name in ("skip", "times", "status", "drip_bps", "cut_after", "corrupt_offset",
                     "file_size_delta"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"rule field {name!r} must be a whole number")
        for name in ("retry_after", "retry_after_custom", "stall"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, _NUMBERS) or value < 0):
                raise ValueError(f"rule field {name!r} must be a number >= 0")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("rule field 'status' must be an HTTP status")
        if self.skip is not None and self.skip < 0:
            raise ValueError("rule field 'skip' must be >= 0")
        if self.times is not None and self.times < 1:
            raise ValueError("rule field 'times' must be >= 1 or null")
        if self.drip_bps is not None and self.drip_bps < 1:
            raise ValueError("rule field 'drip_bps' must be >= 1")
        for name in ("user_agent", "model_name", "version_name", "asset_experiment_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"rule field {name!r} must be a non-empty string")

    def matches(self, method: str, path: str, model: str | None, agent: str = "") -> bool:
        """True when the request falls under this rule."""
        return (self.path in path
                and (self.method is None or self.method.upper() == method)
                and (self.user_agent is None or self.user_agent in agent)
                and (self.model is None or self.model == model))

    def error_headers(self) -> dict[str, str]:
        """The Retry-After headers this rule adds to its error answer."""
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = _seconds(self.retry_after)
        if self.retry_after_custom is not None:
            headers["Retry-After-Custom"] = _seconds(self.retry_after_custom)
        return headers

    @property
    def rewrites_json(self) -> bool:
        """True when the rule changes fields of a JSON answer."""
        return bool(self.file_size_delta or self.model_name or self.version_name
                    or self.asset_experiment_key)

    @property
    def alters_body(self) -> bool:
        """True when the rule changes the bytes or pace of the answer's body."""
        return bool(self.drip_bps or self.cut_after is not None or self.corrupt or self.chunked)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Faults:
    """The live fault rules, consumed as requests match them."""

    def __init__(self):
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def add(self, rules: Iterable[Rule]) -> None:
        """Append rules after the live ones."""
        with self._lock:
            self._rules.extend(rules)

    def replace(self, rules: Iterable[Rule]) -> None:
        """Replace every rule."""
        with self._lock:
            self._rules = list(rules)

    def listing(self) -> list[dict]:
        """The live rules as JSON objects, `times` being what remains."""
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def take(self, method: str, path: str, model: Callable[[], str | None],
             agent: str = "") -> Rule | None:
        """The first live rule matching a request, counting the match; model() is called lazily."""
        with self._lock:
            if not self._rules:
                return None
            name = model() if any(r.model is not None for r in self._rules) else None
            for rule in self._rules:
                if rule.matches(method, path, name, agent):
                    if rule.skip:
                        rule.skip -= 1
                        continue
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return rule
        return None


class RequestCounts:
    """How many requests each path (and method + path) received since start or reset."""

    def __init__(self):
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, method: str, path: str) -> None:
        """Count one request."""
        with self._lock:
            self._counts[(method, path)] += 1

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()

    def summary(self) -> dict[str, Any]:
        """{"total": n, "by_path": {path: n}, "by_method_path": {"GET path": n}}."""
        with self._lock:
            counts = dict(self._counts)
        by_path: Counter[str] = Counter()
        for (_, path), n in counts.items():
            by_path[path] += n
        return {"total": sum(counts.values()), "by_path": dict(by_path),
                "by_method_path": {f"{m} {p}": n for (m, p), n in counts.items()}}


def add_to_file_sizes(body: bytes, delta: int) -> bytes:
    """A JSON body with delta added to every "fileSize" in it."""
    def shift(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (v + delta if k == "fileSize" and isinstance(v, int) else shift(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [shift(v) for v in node]
        return node

    return json.dumps(shift(json.loads(body))).encode()


def rewrite_json(body: bytes, rule: Rule) -> bytes:
    """A JSON answer with the rule's fileSize shift, foreign modelName and asset experimentKey."""
    data = json.loads(body)
    if rule.model_name and isinstance(data, dict) and "modelName" in data:
        data["modelName"] = rule.model_name
    if rule.version_name and isinstance(data, dict) and "version" in data:
        data["version"] = rule.version_name
    if rule.asset_experiment_key:
        _set_asset_keys(data, rule.asset_experiment_key)
    text = json.dumps(data).encode()
    return add_to_file_sizes(text, rule.file_size_delta) if rule.file_size_delta else text


def _set_asset_keys(node: Any, key: str) -> None:
    """Give every asset (an object under an "assets" list) this experimentKey, link included."""
    if isinstance(node, list):
        for item in node:
            _set_asset_keys(item, key)
    elif isinstance(node, dict):
        for asset in node.get("assets") or ():
            if isinstance(asset, dict):
                old = asset.get("experimentKey")
                asset["experimentKey"] = key
                if old and isinstance(asset.get("link"), str):
                    asset["link"] = asset["link"].replace(f"experimentKey={old}",
                                                          f"experimentKey={key}")
        for value in node.values():
            if isinstance(value, list | dict):
                _set_asset_keys(value, key)


def alter_body(chunks: Iterable[bytes], rule: Rule, length: int | None,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[bytes]:
    """The body's chunks corrupted, cut short and dripped as the rule says."""
    offset = rule.corrupt_offset if rule.corrupt_offset is not None else (length or 0) // 2
    sent = 0
    for chunk in chunks:
        if rule.corrupt and sent <= offset < sent + len(chunk):
            i = offset - sent
            chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
        if rule.cut_after is not None and sent + len(chunk) >= rule.cut_after:
            yield from _drip(chunk[: rule.cut_after - sent], rule.drip_bps, sleep)
            # Ending the body before Content-Length makes the server close the connection.
            return
        yield from _drip(chunk, rule.drip_bps, sleep)
        sent += len(chunk)


def _drip(chunk: bytes, bps: int | None, sleep: Callable[[float], None]) -> Iterator[bytes]:
    if not bps:
        yield chunk
        return
    step = max(1, bps // 10)
    for start in range(0, len(chunk), step):
        yield chunk[start:start + step]
        sleep(min(step, len(chunk) - start) / bps)
