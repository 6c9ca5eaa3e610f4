"""Proof that secrets never leak: every log file, error body, metric and status is scanned.

    scan = SecretScan(["the-api-key", "the-reload-token"])
    scan.watch(sidecar_log, gunicorn_log)      # files, scanned from where the last scan stopped
    scan.check(response.text, "GET /metrics")  # any text, at once
    scan.check_files()                         # the new lines of every watched file

A hit raises AssertionError naming where it was found (the secret itself is not repeated). The
scan also counts what it saw per kind, so a test can prove that it looked at something.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path


class SecretScan:
    """Scans outputs for a fixed set of secrets."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = tuple(s for s in secrets if s)
        self._offsets: dict[Path, int] = {}
        self.seen: Counter[str] = Counter()  # kind -> bytes scanned

    def watch(self, *paths: Path) -> None:
        """Scan these files from now on (from their beginning)."""
        for path in paths:
            self._offsets.setdefault(Path(path), 0)

    def check(self, text: str | bytes, where: str, kind: str = "output") -> None:
        """Fail if any secret appears in text."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        self.seen[kind] += len(text)
        for number, secret in enumerate(self.secrets):
            if secret in text:
                line = next(x for x in text.splitlines() if secret in x)
                shown = line.replace(secret, f"<SECRET #{number}>")[:300]
                raise AssertionError(f"secret #{number} leaked in {where}: {shown}")

    def check_files(self, final: bool = False) -> None:
        """Scan the whole lines every watched file gained since the last scan (all if final)."""
        for path, offset in list(self._offsets.items()):
            if not path.exists():
                continue
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
            if not final:  # a line still being written is scanned whole, next time
                data = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(data)
            self.check(data, f"log file {path.name}", "log")
