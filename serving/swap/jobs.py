"""Validation jobs and their verdicts, shared by every worker through small files.

A snapshot is validated once per manifest: the first worker asked creates `<key>.job` (O_EXCL),
starts the validator process (serving.swap.validator) from a thread and, when it ends, writes
`<key>.verdict` (atomically) and removes the job. Every worker reads the same verdict; a job whose
owner died, or that outlived its deadline by far, is taken over. The folder (VALIDATION_DIR) is
serving's own, never MODEL_ROOT. The key is a hash of the snapshot id and its manifest's bytes.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model_contract import layout, logs, manifest
from model_contract.manifest import MANIFEST_NAME
from serving.config import ServingConfig
from serving.errors import SnapshotNotFound
from serving.model import registry_values

from .runners import run_in_process
from .validator import process_alive

log = logs.get(__name__)
KEPT_VERDICTS = 64
TAKEOVER_GRACE = 30.0  # seconds past the deadline after which a job is presumed lost


class State(enum.Enum):
    """Where the validation of one snapshot stands."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RUNNING = "running"


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one snapshot (RUNNING until the validator ends)."""

    snapshot: str
    state: State
    reason: str = ""
    version: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    layout: str | None = None
    checks: str | None = None

    def to_json(self) -> dict[str, object]:
        """The verdict as written to disk and answered by /-/validate."""
        body: dict[str, object] = {"state": self.state.value, "snapshot": self.snapshot}
        if self.state is State.REJECTED:
            body["reason"] = self.reason
        elif self.state is State.ACCEPTED:
            body.update(version=self.version, versions=self.versions, layout=self.layout,
                        checks=self.checks)
        return body


def death_reason(returncode: int) -> str:
    """Why a validator that wrote no verdict ended, from its exit status."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        reason = f"validator killed by signal {number} ({name})"
        return reason + "; likely out of memory" if number == signal.SIGKILL else reason
    return f"validator exited with status {returncode} before giving a verdict"


Runner = Callable[[ServingConfig, str, Path, float], int]


class Validations:
    """Starts validation jobs and reads their shared verdicts."""

    def __init__(self, config: ServingConfig, runner: Runner = run_in_process,
                 clock: Callable[[], float] = time.time):
        self._config, self._runner, self._clock = config, runner, clock
        self._folder = config.validation_dir
        self._folder.mkdir(parents=True, exist_ok=True)

    def key(self, snapshot_id: str) -> str:
        """The job's file stem: a hash of the id and the manifest (SnapshotNotFound if none)."""
        try:
            folder = layout.snapshot_path(self._config.model_root, snapshot_id)
        except ValueError:
            raise SnapshotNotFound(snapshot_id) from None
        if not folder.is_dir():
            raise SnapshotNotFound(snapshot_id)
        digest = hashlib.sha256(snapshot_id.encode("utf-8", "surrogatepass") + b"\0")
        with contextlib.suppress(OSError):
            digest.update((folder / MANIFEST_NAME).read_bytes())
        return digest.hexdigest()[:40]

    def verdict(self, snapshot_id: str) -> Verdict | None:
        """The finished verdict on this snapshot, or None."""
        return self._read_verdict(snapshot_id, self.key(snapshot_id))

    def request(self, snapshot_id: str) -> Verdict:
        """The verdict if there is one; else make sure a job runs and say RUNNING."""
        key = self.key(snapshot_id)
        found = self._read_verdict(snapshot_id, key)
        if found is not None:
            return found
        refusal = self._precheck(snapshot_id)
        if refusal is not None:  # no process needed to refuse what the manifest says
            self._record(key, refusal)
            return refusal
        if self._claim(key):
            found = self._read_verdict(snapshot_id, key)
            if found is not None:  # the verdict landed between the first look and the claim
                self._path(key, "job").unlink(missing_ok=True)
                return found
            log.info("validation_started", snapshot=snapshot_id)
            threading.Thread(target=self._run, args=(snapshot_id, key), daemon=True,
                             name=f"validate-{snapshot_id[:40]}").start()
        return Verdict(snapshot_id, State.RUNNING)

    def wait(self, snapshot_id: str, seconds: float, poll: float = 0.05) -> Verdict:
        """request(), then wait up to `seconds` for the verdict."""
        deadline = time.monotonic() + seconds
        verdict = self.request(snapshot_id)
        while verdict.state is State.RUNNING and time.monotonic() < deadline:
            time.sleep(poll)
            verdict = self.request(snapshot_id)
        return verdict

    def _precheck(self, snapshot_id: str) -> Verdict | None:
        """A manifest that cannot be read, or holds unsafe registry values: REJECTED at once."""
        folder = layout.snapshot_path(self._config.model_root, snapshot_id)
        try:
            registry_values.check(manifest.read(folder))
        except (manifest.ManifestError, registry_values.UnsafeValue) as exc:
            log.info("validation_finished", snapshot=snapshot_id, state="rejected",
                     reason=str(exc), seconds=0)
            return Verdict(snapshot_id, State.REJECTED, str(exc))
        return None

    def _path(self, key: str, suffix: str) -> Path:
        return self._folder / f"{key}.{suffix}"

    def _read_verdict(self, snapshot_id: str, key: str) -> Verdict | None:
        try:
            raw = json.loads(self._path(key, "verdict").read_text(encoding="utf-8"))
            return Verdict(snapshot_id, State(raw["state"]), str(raw.get("reason", "")),
                           raw.get("version"), dict(raw.get("versions") or {}),
                           raw.get("layout"), raw.get("checks"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # torn by a crash mid-write (writes are atomic, so only by hand)

    def _claim(self, key: str) -> bool:
        """Become the owner of this job, unless a live owner has it."""
        job = self._path(key, "job")
        # Written whole first, then linked in place: a job file is never seen empty (another
        # worker would take an empty one for abandoned and run the same job beside it).
        draft = self._path(key, f"job.{os.getpid()}.{threading.get_ident()}.tmp")
        draft.write_text(json.dumps({"pid": os.getpid(), "started": self._clock()}))
        try:
            for _ in range(2):
                try:
                    os.link(draft, job)
                except FileExistsError:
                    if not self._abandoned(job):
                        return False
                    with contextlib.suppress(FileNotFoundError):  # only one taker renames it
                        os.rename(job, job.with_name(f"{job.name}.lost-{os.getpid()}"))
                        os.unlink(job.with_name(f"{job.name}.lost-{os.getpid()}"))
                    continue
                return True
            return False
        finally:
            draft.unlink(missing_ok=True)

    def _abandoned(self, job: Path) -> bool:
        """True when the job's owner process is gone or the job is long past its deadline."""
        try:
            owner = json.loads(job.read_text(encoding="utf-8"))
            pid, started = int(owner["pid"]), float(owner["started"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError):
            return True  # the owner died between creating and writing the file
        if self._clock() - started > self._config.validation_timeout + TAKEOVER_GRACE:
            return True
        if not process_alive(pid):
            log.warning("validation_restarted", reason="its worker died", worker=pid)
            return True
        return False

    def _run(self, snapshot_id: str, key: str) -> None:
        result = self._path(key, "result")
        timeout = self._config.validation_timeout
        started = time.monotonic()
        try:
            code = self._runner(self._config, snapshot_id, result, timeout)
            verdict = self._interpret(snapshot_id, code, result)
        except TimeoutError:
            result.unlink(missing_ok=True)  # the child opens it first: it may hold nothing
            verdict = Verdict(snapshot_id, State.REJECTED,
                              f"validation took longer than VALIDATION_TIMEOUT={timeout:g}s")
        except Exception as exc:  # this thread is the job's loop: report, let a later ask retry
            log.error("validation_failed", snapshot=snapshot_id, error_type=type(exc).__name__,
                      error=str(exc), traceback=traceback.format_exc())
            result.unlink(missing_ok=True)
            self._path(key, "job").unlink(missing_ok=True)
            return
        self._record(key, verdict)
        log.info("validation_finished", snapshot=snapshot_id, state=verdict.state.value,
                 reason=verdict.reason or None, seconds=round(time.monotonic() - started, 3))

    def _interpret(self, snapshot_id: str, code: int, result: Path) -> Verdict:
        try:
            raw = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None
        finally:
            result.unlink(missing_ok=True)
        if code != 0 or not isinstance(raw, dict) or raw.get("state") not in ("accepted",
                                                                              "rejected"):
            return Verdict(snapshot_id, State.REJECTED, death_reason(code))
        if raw["state"] == "rejected":
            return Verdict(snapshot_id, State.REJECTED, str(raw.get("reason", "")))
        return Verdict(snapshot_id, State.ACCEPTED, "", raw.get("version"),
                       dict(raw.get("versions") or {}), raw.get("layout"), raw.get("checks"))

    def _record(self, key: str, verdict: Verdict) -> None:
        target = self._path(key, "verdict")
        temp = self._path(key, f"verdict.{os.getpid()}.{threading.get_ident()}.tmp")  # per thread
        temp.write_text(json.dumps(verdict.to_json()), encoding="utf-8")
        os.replace(temp, target)
        self._path(key, "job").unlink(missing_ok=True)
        self._prune()

    def _prune(self) -> None:
        """Keep the newest KEPT_VERDICTS verdicts (snapshots come and go)."""
        verdicts = sorted(self._folder.glob("*.verdict"), key=_mtime, reverse=True)
        for old in verdicts[KEPT_VERDICTS:]:
            old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
