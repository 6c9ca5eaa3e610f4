"""granian's master: a crash-loop guard that a killed worker never trips, a replacement that
serves before the worker it replaces stops.

granian stops the whole server when a worker dies within 5.5 s of its own respawn ("crash loop
detected"): meant for an app that cannot start, it also stopped the pod when the kernel's OOM
killer or a worker's watchdog (SIGKILL) hit two workers in a row, a few seconds apart. Here a
worker that a signal killed is always replaced; one that exited by itself (its app failed to
start, an exit code) still trips granian's guard, so a front that cannot start still stops and
Kubernetes sees it.

granian replaces a worker past FRONT_WORKER_MAX_RSS (or on SIGHUP) by starting a new one and
stopping the old at once; two leaking workers replaced in the same second left no worker
listening for the second the new ones took to start (connections refused: 22 of 4,484 requests
of a load failed, measured). Here the old worker stops only once its replacement listens.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from granian import Granian
from granian.log import logger as granian_log

from model_contract.logs import EventLogger

from .listener import is_listening

log = EventLogger("serving.front.master")  # configured in __main__.LOG_CONFIG


class Front(Granian):
    """granian's server whose crash-loop guard ignores workers killed by a signal."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.respawned_wrks = RespawnTimes(self)

    def _respawn_workers(self, workers: Any, spawn_target: Any, target_loader: Any,
                         delay: float = 0) -> None:
        """granian's replacement of workers, one by one, a live old worker stopped only once its
        replacement listens (or died, or READY_SECONDS passed); `delay` is not needed."""
        for idx in workers:
            self.respawned_wrks[idx] = time.monotonic()
            granian_log.info(f"Respawning worker-{idx + 1}")
            old = self.wrks.pop(idx)
            new = self._spawn_worker(idx=idx, target=spawn_target, callback_loader=target_loader)
            new.start()
            self.wrks.insert(idx, new)
            if old.is_alive():
                wait_listening(new, self.bind_port)
            granian_log.info(f"Stopping old worker-{idx + 1}")
            old.terminate()
            old.join(self.workers_kill_timeout)
            if old.is_alive():
                old.kill()
                old.join()
            granian_log.info(f"Stopped old worker-{idx + 1}")
        self._metrics.incr_spawn(len(workers))


class RespawnTimes(dict):
    """granian's record of when it respawned each worker, as its crash-loop guard reads it.

    The guard asks `get(idx, 0)` for each dead worker, once per death, and exits if the answer
    is less than 5.5 s ago: for a worker killed by a signal the answer is "never respawned".
    """

    def __init__(self, server: Any):
        super().__init__()
        self.server = server

    def get(self, idx: Any, default: Any = None) -> Any:
        """When the worker at idx was respawned, or `default` if a signal killed it since."""
        killed_by = killed_by_signal(self.server, idx)
        if killed_by is None:
            return super().get(idx, default)
        log.warning("worker_killed", worker=idx + 1, signal=killed_by,
                    note="replaced; never counted as a crash loop")
        return default


def killed_by_signal(server: Any, idx: Any) -> str | None:
    """The name of the signal that ended the worker at idx, or None (alive, or it exited)."""
    try:
        code = server.wrks[idx].inner.exitcode
    except (AttributeError, IndexError, TypeError):
        return None
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return str(-code)


READY_SECONDS = 60.0  # a worker loads its model before it listens: seconds on a busy machine


def wait_listening(worker: Any, port: int) -> None:
    """Wait until the worker listens on the port, dies, or READY_SECONDS pass."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and worker.is_alive() and \
            not is_listening(worker.inner.pid, port):
        time.sleep(0.05)
