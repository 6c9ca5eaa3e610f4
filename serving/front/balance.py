"""Even out kept-alive connections between the front's workers.

Each worker has its own listening socket (SO_REUSEPORT); the kernel hashes every new connection
to one of them, so a few kept-alive clients can pile on one worker while the other idles (8
connections land 6/2 or worse one time in three) and their requests queue behind each other.
Each worker counts its kept-alive connections that are busy: those that carried a second request
and sent one within the last WINDOW seconds (a connection is its client's address and port). It
publishes the count in memory shared by the pod's workers. A worker that finds itself at least
SHED_GAP above the least busy one at two looks in a row (JUDGE_EVERY apart) answers one request
of a busy connection with `Connection: close`, then waits SHED_PAUSE: the client reconnects and
the kernel hashes the new connection afresh, so a crowded worker sheds connections until the
counts are even. Connections used once (clients that do not keep them alive) are never counted.
Before a shed the worker asks the kernel (serving.front.port_queues): connections whose answers
wait unread (clients that pipeline and never read) stop counting, and nothing is shed while
connections wait in the port's accept queues, since the reconnection would wait behind them (at
FRONT_MAX_CONNECTIONS, up to two send deadlines).
The memory is mapped by the master before it forks, so every worker sees the same slots. A worker
claims its slot once its app is built, so a worker still loading never looks least busy.
"""

from __future__ import annotations

import time

from serving.swap.validator import process_alive

from . import port_queues
from .slots import WorkerSlots

WINDOW = 0.5  # seconds: a connection quiet for longer no longer counts (nor loads)
SHED_GAP = 2  # moving one connection from a worker 2 ahead evens the counts; 1 would only swap
JUDGE_EVERY = 0.02  # seconds between two looks at the counts; a gap must be seen twice in a row
# After a shed, the moved connection counts on its new worker only from its second request
# there: judging again at once would shed more than half the gap.
SHED_PAUSE = 0.1


class WorkerLoads:
    """Each worker's count of busy connections, one slot (pid, count) per worker, shared."""

    def __init__(self, slots: int, port: int | None = None):
        self.slots, self.port = slots, port  # the public port, for the kernel's queues
        self.shared = WorkerSlots(slots, fields=2)  # (pid, count) per worker
        self.cells = self.shared.cells
        self.mine: int | None = None
        self.seen: dict[str, float] = {}  # connection -> when it last sent a request
        self.kept: set[str] = set()  # those of them past their first request
        self.unread: set[str] = set()  # those whose answers wait unread: never counted
        self.queued: set[str] = set()  # those with answers unacknowledged at the last look
        self.looked = 0.0  # when the kernel's queues were last read
        self.next_look = 0.0
        self.was_crowded = False

    def claim(self) -> bool:
        """Take a free slot (or a dead worker's) for this process, once it is ready to serve;
        False if none could be had (this worker then never sheds)."""
        try:
            self.mine = self.shared.take()
        except OSError:  # the slots' lock refused (ENOLCK on some file systems)
            self.mine = None
        return self.mine is not None

    def should_shed(self, connection: str) -> bool:
        """Note a request on this connection; whether to close it after its answer."""
        mine = self.mine
        if mine is None:
            return False
        now = time.monotonic()
        if connection in self.unread:
            self.seen[connection] = now  # still here: it stays known as one that never reads
            return False
        busy = connection in self.seen
        if busy and connection not in self.kept:
            self.cells[2 * mine + 1] += 1  # the others see a newly busy connection at once
            self.kept.add(connection)
        self.seen[connection] = now
        if now < self.next_look:
            return False
        self.next_look = now + JUDGE_EVERY
        crowded = self._count(now) - self._least_other() >= SHED_GAP
        if not (crowded and self.was_crowded and busy):
            # A gap seen once may be a count caught between two requests: look again first.
            self.was_crowded = crowded
            return False
        self.was_crowded = False
        self.next_look = now + SHED_PAUSE
        if not self._kernel_allows(connection, now):
            return False
        del self.seen[connection]
        self.kept.discard(connection)
        self.cells[2 * mine + 1] -= 1
        return True

    def _kernel_allows(self, connection: str, now: float) -> bool:
        """Whether the kernel's queues leave the shed worth it: this worker still crowded once
        the connections that do not read stop counting, this one reads, none waits to connect."""
        if self.port is None:
            return True
        queues = port_queues.read(self.port)
        queued = {key for key in self.seen if port_queues.client_key(key) in queues.queued}
        # A request carries the ACK of the answers before it: answers still queued behind this
        # one's request were never read. Another connection's may wait for its client's next
        # request or delayed ACK: it never read only if still queued at the next look with no
        # request sent in between.
        self.unread |= {key for key in queued & self.queued if self.seen[key] <= self.looked}
        if connection in queued:
            self.unread.add(connection)
        self.queued, self.looked = queued, now
        if connection in self.unread or queues.waiting:
            self._count(now)
            return False
        return self._count(now) - self._least_other() >= SHED_GAP

    def _count(self, now: float) -> int:
        """Forget connections quiet for WINDOW; publish and return how many remain busy."""
        quiet = now - WINDOW
        self.seen = {key: last for key, last in self.seen.items() if last > quiet}
        self.kept &= self.seen.keys()
        self.unread &= self.seen.keys()  # one gone quiet may come back as another's port
        self.kept -= self.unread
        self.cells[2 * self.mine + 1] = len(self.kept)
        return len(self.kept)

    def _least_other(self) -> int:
        """The smallest count of the other live workers' slots (this worker's own if it is
        alone): a worker that died keeps its slot until its replacement claims it."""
        cells, mine = self.cells, self.mine
        return min((cells[2 * slot + 1] for slot in range(self.slots)
                    if slot != mine and cells[2 * slot] and process_alive(cells[2 * slot])),
                   default=cells[2 * mine + 1])


LOADS: WorkerLoads | None = None


def share(workers: int, port: int | None = None) -> None:
    """In the master, before the fork: map the slots every worker will use; `port` is the
    public one, whose kernel queues are read before a shed (None: never read).

    OSError if the slots' lock file cannot be made (no writable temporary folder): the caller
    serves without the balance.
    """
    global LOADS
    # Twice the workers: room for a replacement before the dead is reaped.
    LOADS = WorkerLoads(slots=2 * workers, port=port)
