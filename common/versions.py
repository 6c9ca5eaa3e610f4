"""The one ordering of version strings, semver.org 2.0.0 §11, for the sidecar and the registry.

Numeric pre-release parts compare as numbers (1.0.0-alpha.2 < 1.0.0-alpha.10), a release sorts
after its pre-releases, build metadata is ignored. A string that is not a semantic version sorts
below every semantic version (the sidecar refuses such a version before it is served).
"""

from __future__ import annotations

from functools import total_ordering

import semver


@total_ordering
class VersionKey:
    """A sort key of a version string."""

    __slots__ = ("parsed", "raw")

    def __init__(self, raw: str):
        self.raw = raw
        try:
            self.parsed: semver.Version | None = semver.Version.parse(raw)
        except (ValueError, TypeError):
            self.parsed = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionKey):
            return NotImplemented
        return self._tuple() == other._tuple()

    def __lt__(self, other: VersionKey) -> bool:
        if (self.parsed is None) != (other.parsed is None):
            return self.parsed is None
        if self.parsed is None or other.parsed is None:  # both, after the line above
            return self.raw < other.raw
        return self.parsed < other.parsed

    def __hash__(self) -> int:
        return hash(self._tuple())

    def _tuple(self) -> tuple[object, ...]:
        found = self.parsed
        return (self.raw,) if found is None else found.to_tuple()[:4]

    @property
    def major_minor(self) -> tuple[int, int]:
        """(major, minor), (0, 0) for a string that is not a semantic version."""
        return (self.parsed.major, self.parsed.minor) if self.parsed else (0, 0)


def semver_key(version: str) -> VersionKey:
    """A sort key for semantic versions (semver.org §11)."""
    return VersionKey(version)
