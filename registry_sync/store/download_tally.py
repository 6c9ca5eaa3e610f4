"""Assets downloaded side by side: one progress over all, requests in the plan's order, abandon.

Two assets stream at once, yet the registry sees their requests in the order the instructions
listed them (an asset asks only once the one before it is streaming, or has failed): the same
order of requests as a download of one asset after the other, so a fault aimed at the n-th
request, a log or a request count reads the same. The first failure abandons the others at
their next chunk, and an asset not yet requested is never requested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

ProgressFn = Callable[[int, int | None], None]


class Abandoned(Exception):
    """Another asset of the download failed or was stopped: this one ends too."""


class Tally:
    """Bytes received over every asset, reported as one; whose turn it is to ask; abandon."""

    def __init__(self, assets: int, total: int, progress: ProgressFn | None):
        self.total, self.progress, self.received = total, progress, 0
        self.sizes: dict[int, int] = {}
        self.lock = threading.Lock()
        self.abandon = threading.Event()
        self.asked = [threading.Event() for _ in range(assets)]

    def for_asset(self, index: int) -> AssetTally:
        """The view one asset's download reports to."""
        return AssetTally(self, index)

    def report(self, index: int, size: int) -> None:
        """Asset `index` now holds `size` bytes (fewer than before after a restart)."""
        if self.abandon.is_set():
            raise Abandoned()
        with self.lock:  # ProgressLog expects one caller at a time
            self.received += size - self.sizes.get(index, 0)
            self.sizes[index] = size
            if self.progress is not None:
                self.progress(self.received, self.total)


class AssetTally:
    """One asset's side: wait for its turn to ask, say it is streaming, report its bytes."""

    def __init__(self, tally: Tally, index: int):
        self.tally, self.index = tally, index

    def wait_turn(self) -> None:
        """Return once the asset before this one is streaming; Abandoned if the download ends."""
        if self.index:
            self.tally.asked[self.index - 1].wait()
        if self.tally.abandon.is_set():
            raise Abandoned()

    def streaming(self) -> None:
        """This asset's answer is accepted: the next one may ask."""
        self.tally.asked[self.index].set()

    def failed(self) -> None:
        """This asset failed: abandon the others, then let the next one see it."""
        self.tally.abandon.set()
        self.tally.asked[self.index].set()

    def __call__(self, size: int) -> None:
        self.tally.report(self.index, size)
