"""A bounded prediction load on loopback that records what every answer said.

    with Load(serving.url, clients=2, seconds=20) as load:
        ...                               # publish, kill, break things
    load.assert_all_ok()                  # zero failed requests
    load.answers                          # (started, ended, status, version, snapshot, error)

`v2_model=NAME` sends the same instance through the Open Inference Protocol (/v2/.../infer).

Each client thread sends JSON predictions one after another (a short pause between them) until
the load is stopped, `seconds` have passed, or `max_requests` were sent in all: it always stops
by itself. A request that fails below HTTP (connection reset, timeout) is recorded with status 0
and the exception's name; a non-2xx answer keeps its body, so that it can be shown and scanned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests

VALID = {"carat": 0.31, "color": "E", "clarity": "SI1", "depth": 61.5, "table": 55.0,
         "price": 420, "x": 4.3, "y": 4.32, "z": 2.65}


def v2_body(instance: dict) -> dict:
    """The Open Inference Protocol request for one instance: one tensor per feature."""
    return {"inputs": [{"name": name, "shape": [1], "data": [value],
                        "datatype": "BYTES" if isinstance(value, str) else "FP64"}
                       for name, value in instance.items()]}



def triton_tensors(rows: list[dict], binary: bool = True) -> list:
    """The rows as a tritonclient user builds them: one InferInput per feature, from numpy
    columns (binary tensor data unless told otherwise)."""
    import numpy as np
    import tritonclient.http as triton  # the test extra: only bench and tests call this

    made = []
    for name in rows[0]:
        values = [row[name] for row in rows]
        text = isinstance(values[0], str)
        tensor = triton.InferInput(name, [len(values)], "BYTES" if text else "FP64")
        tensor.set_data_from_numpy(np.array(values, dtype=object if text else np.float64),
                                   binary_data=binary)
        made.append(tensor)
    return made

@dataclass(frozen=True)
class Answer:
    """One request of the load: when (monotonic seconds), and what came back."""

    client: int
    started: float
    ended: float
    status: int  # 0: failed below HTTP
    version: str | None = None
    snapshot: str | None = None
    error: str | None = None  # exception name, or the body of a non-2xx answer


class Load:
    """Prediction requests from `clients` threads, bounded in time and in count."""

    def __init__(self, url: str, clients: int = 2, seconds: float = 30.0,
                 max_requests: int = 20_000, pause: float = 0.01, timeout: float = 5.0,
                 on_error: Callable[[str, str], None] | None = None,
                 v2_model: str | None = None, bodies: Sequence[dict] = (VALID,)):
        # v2_model: send Open Inference Protocol requests to that model instead of /api/v1.
        # bodies: sent in turn, across the clients.
        self.url = url.rstrip("/") + (f"/v2/models/{v2_model}/infer" if v2_model
                                      else "/api/v1/predict")
        self.bodies = tuple(v2_body(b) for b in bodies) if v2_model else tuple(bodies)
        self.clients, self.seconds, self.max_requests = clients, seconds, max_requests
        self.pause, self.timeout, self._on_error = pause, timeout, on_error
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent = 0

    def __enter__(self) -> Load:
        deadline = time.monotonic() + self.seconds
        self._threads = [threading.Thread(target=self._client, args=(n, deadline), daemon=True,
                                          name=f"load-{n}") for n in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Wait until the load ends by itself (its time or its request budget is spent)."""
        for thread in self._threads:
            thread.join(self.seconds + self.timeout + 5)

    def stop(self) -> None:
        """Stop every client and wait for it."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _take_ticket(self) -> int | None:
        """The number of the next request to send, or None when the budget is spent."""
        with self._lock:
            if self._sent >= self.max_requests:
                return None
            self._sent += 1
            return self._sent

    def _client(self, number: int, deadline: float) -> None:
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline and \
                    (ticket := self._take_ticket()) is not None:
                self._record(self._one(session, number, self.bodies[ticket % len(self.bodies)]))
                self._stop.wait(self.pause)

    def _one(self, session: requests.Session, number: int, body: dict) -> Answer:
        started = time.monotonic()
        try:
            response = session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            return Answer(number, started, time.monotonic(), 0, error=type(exc).__name__)
        error = None if response.ok else response.text[:2000]
        if error is not None and self._on_error is not None:
            self._on_error(error, f"load answer HTTP {response.status_code}")
        return Answer(number, started, time.monotonic(), response.status_code,
                      response.headers.get("X-Model-Version"),
                      response.headers.get("X-Model-Snapshot"), error)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    @property
    def answers(self) -> list[Answer]:
        """Every answer so far, in the order the requests started."""
        with self._lock:
            return sorted(self._answers, key=lambda a: a.started)

    def failures(self) -> list[Answer]:
        """Answers that were not 200."""
        return [a for a in self.answers if a.status != 200]

    def versions(self) -> set[str]:
        """Every model version that answered."""
        return {a.version for a in self.answers if a.version}

    def assert_all_ok(self, at_least: int = 10) -> None:
        """Every request got a 200, and the load really ran."""
        answers, failed = self.answers, self.failures()
        assert len(answers) >= at_least, f"the load sent only {len(answers)} requests"
        assert not failed, f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
