"""Trained diamonds model folders for tests, in both layouts, trained once and cached.

    from devkit.models import trained_models  # noqa: F401  (in a conftest.py)

    def test_something(trained_models):
        trained_models.pipeline   # our layout: pipeline.skops + metadata.json
        trained_models.seed       # the seed's layout: five registry model folders

Folders are cached in pytest's cache directory under a key made of the training code, the data
and the library versions, so a second run does not train again. Treat them as read-only: copy
before changing anything (build_snapshot copies).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import sklearn
import skops

REPO_ROOT = Path(__file__).resolve().parents[1]
_TRAINING_SOURCES = ("serving/train.py", "serving/schema.py", "serving/validation.py",
                     "serving/dataset.py", "serving/data/diamonds.csv.gz")
SEED = 42


@dataclass(frozen=True)
class TrainedModels:
    """Read-only model folders, one per kind."""

    pipeline: Path      # our layout, baseline hyperparameters, pipeline.skops
    alternative: Path   # our layout, deliberately different hyperparameters
    pickled: Path       # our layout with pipeline.pkl instead of pipeline.skops
    seed: Path          # the seed's layout: diamonds-model/model.pkl and four more folders


def cache_key() -> str:
    """Changes whenever training could produce something different."""
    digest = hashlib.sha256(f"{sklearn.__version__}/{skops.__version__}/{SEED}".encode())
    for name in _TRAINING_SOURCES:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def train_all(target: Path) -> TrainedModels:
    """Train every kind into target (skipped if a complete earlier run is there)."""
    models = TrainedModels(*(target / kind for kind in ("pipeline", "alternative", "pickled",
                                                         "seed")))
    if (target / "done").exists():
        return models
    from serving import train

    work = Path(tempfile.mkdtemp(prefix="train-", dir=target.parent))
    train.train_pipeline(work / "pipeline", SEED, "baseline", "skops", "test baseline")
    train.train_pipeline(work / "alternative", SEED, "alternative", "skops", "test alternative")
    train.train_pipeline(work / "pickled", SEED, "baseline", "pickle", "test pickle")
    train.train_seed_layout(work / "seed", SEED, "baseline")
    (work / "done").write_text("ok\n")
    try:
        os.rename(work, target)
    except OSError:  # another process finished first: use its folders
        shutil.rmtree(work, ignore_errors=True)
    return models


@pytest.fixture(scope="session")
def trained_models(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    """The trained model folders, cached across test sessions (when pytest's cache is on)."""
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("serving-models")) if cache else tmp_path_factory.mktemp("models")
    return train_all(folder / cache_key())


def wrong_golden(source: Path, target: Path) -> Path:
    """The pipeline's folder whose golden examples expect the opposite labels."""
    shutil.copytree(source, target)
    meta = json.loads((target / "metadata.json").read_text())
    for example in meta["golden"]:
        example["label"] = "Silver" if example["label"] == "Gold" else "Gold"
    (target / "metadata.json").write_text(json.dumps(meta))
    return target


class LoadsAs:
    """A pickle that runs a line of Python when it is loaded (a hostile model's payload)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


HOSTILE_PAYLOADS = {
    "sigkill": "__import__('os').kill(__import__('os').getpid(), 9)",
    "segfault": "__import__('ctypes').string_at(0)",
    "exit": "__import__('os')._exit(3)",
    "hang": "__import__('time').sleep(3600)",
    "allocate": "bytearray(8 * 1024 ** 3)",
}


def hostile(source: Path, target: Path, payload: str) -> Path:
    """A pipeline folder whose pipeline.pkl does `payload` (a HOSTILE_PAYLOADS key) when loaded."""
    import pickle

    shutil.copytree(source, target)
    (target / "pipeline.skops").unlink(missing_ok=True)  # else the loader prefers it
    (target / "pipeline.pkl").write_bytes(pickle.dumps(LoadsAs(HOSTILE_PAYLOADS[payload])))
    return target


# A class defined when the pickle loads (no module of ours needed where it is loaded): the real
# pipeline's answers, except that a row whose carat has a third decimal of 7 (0.317: 1 row in 10
# of such carats; none of the golden or sample rows) never returns (`how`: a Python loop, a
# sleep, or a C call holding the GIL). Validation passes: it runs only those rows.
_HANGING_SOURCE = """
import time
class HangsOnSomeRows:
    def __init__(self, inner, how):
        self.inner, self.how = inner, how
        self.classes_ = inner.classes_
        self.n_features_in_ = inner.n_features_in_
    def predict_proba(self, matrix):
        if any(round(row[0] * 1000) % 10 == 7 for row in matrix):
            while self.how == "loop":
                pass
            if self.how == "gil":  # a C call that holds the GIL for ever, deaf to signals:
                libc = __import__("ctypes").PyDLL(None)  # a mutex locked twice by one thread
                mutex = __import__("ctypes").create_string_buffer(64)
                libc.pthread_mutex_lock(mutex)
                libc.pthread_mutex_lock(mutex)
            time.sleep(3600)
        return self.inner.predict_proba(matrix)
"""


class HangsWhenLoaded:
    """Pickles as a pipeline that hangs on some rows (HANGING_CARAT)."""

    def __init__(self, inner, how: str = "loop"):
        self.inner, self.how = inner, how

    def __reduce__(self):
        code = "(exec(SOURCE, globals()), HangsOnSomeRows(inner, how))[1]"
        return eval, (code, {"SOURCE": _HANGING_SOURCE, "inner": self.inner, "how": self.how})


HANGING_CARAT = 0.317  # a row with this carat hangs the model HangsWhenLoaded builds


def hanging(pickled: Path, target: Path, how: str = "loop") -> Path:
    """The pickled pipeline folder (TrainedModels.pickled) as a model that hangs on the rows
    with HANGING_CARAT once served."""
    import pickle

    shutil.copytree(pickled, target)
    inner = pickle.loads((pickled / "pipeline.pkl").read_bytes())
    (target / "pipeline.pkl").write_bytes(pickle.dumps(HangsWhenLoaded(inner, how)))
    return target


# A challenger that computes on every call before answering: a Python loop, or one C call that
# holds the GIL (a count over 64 MiB), each some tens of milliseconds.
_COMPUTING_SOURCE = """
class Computes:
    def __init__(self, inner, how):
        self.inner, self.how, self.buffer = inner, how, None
        self.classes_ = inner.classes_
        self.n_features_in_ = inner.n_features_in_
    def predict_proba(self, matrix):
        if self.how == "loop":
            total = 0
            for number in range(300_000):
                total += number
        else:
            if self.buffer is None:
                self.buffer = bytes(64 * 1024 * 1024)
            self.buffer.count(b"x")
        return self.inner.predict_proba(matrix)
"""


class ComputesWhenLoaded:
    """Pickles as a pipeline that computes (`how`: loop or c) on every call."""

    def __init__(self, inner, how: str):
        self.inner, self.how = inner, how

    def __reduce__(self):
        code = "(exec(SOURCE, globals()), Computes(inner, how))[1]"
        return eval, (code, {"SOURCE": _COMPUTING_SOURCE, "inner": self.inner, "how": self.how})


def computing(pickled: Path, target: Path, how: str) -> Path:
    """The pickled pipeline folder as a model that computes on every call (loop or c)."""
    import pickle

    shutil.copytree(pickled, target)
    inner = pickle.loads((pickled / "pipeline.pkl").read_bytes())
    (target / "pipeline.pkl").write_bytes(pickle.dumps(ComputesWhenLoaded(inner, how)))
    return target


_KEPT: list[bytes] = []  # per process: what every call of every Leaking instance kept


class Leaking:
    """An estimator that answers as the one it wraps and keeps 256 KiB per call (a leaking
    model: the kind a worker's memory bound is for)."""

    BYTES_PER_CALL = 256 * 1024

    def __init__(self, inner):
        self.inner = inner
        self.classes_ = inner.classes_
        self.n_features_in_ = inner.n_features_in_

    def predict_proba(self, matrix):
        """The wrapped estimator's answer; 256 KiB more kept (written, so really resident)."""
        _KEPT.append(b"\x01" * self.BYTES_PER_CALL)
        return self.inner.predict_proba(matrix)


def leaking(pickled: Path, target: Path) -> Path:
    """The pickled pipeline's folder, its estimator wrapped in Leaking (importable by serving's
    workers: the tests' folder is on their PYTHONPATH)."""
    import pickle

    shutil.copytree(pickled, target)
    inner = pickle.loads((target / "pipeline.pkl").read_bytes())
    (target / "pipeline.pkl").write_bytes(pickle.dumps(Leaking(inner)))
    return target


# A champion that passes its checks and then hurts live traffic (the promotion guard's cases):
# on rows whose carat has a third decimal (none of the golden or sample rows; GUARD_ROWS have
# 9 in 10) it raises on 3 of those digits in 10 ("raise"), answers ONE_CLASS ("one_class"), or,
# on every call, takes 5x its time ("slow").
_MISBEHAVING_SOURCE = """
import time
class Misbehaves:
    def __init__(self, inner, how, label):
        self.inner, self.how, self.label = inner, how, label
        self.classes_ = inner.classes_
        self.n_features_in_ = inner.n_features_in_
    def predict_proba(self, matrix):
        started = time.perf_counter()
        answers = self.inner.predict_proba(matrix)
        digits = [round(float(row[0]) * 1000) % 10 for row in matrix]
        if self.how == "raise" and any(d in (3, 5, 7) for d in digits):
            raise ValueError("unseen input path")
        if self.how == "slow":
            time.sleep(4 * (time.perf_counter() - started))
        if self.how == "one_class":
            column = list(self.classes_).index(self.label)
            for i, digit in enumerate(digits):
                if digit:
                    answers[i] = 0.0
                    answers[i][column] = 1.0
        return answers
"""
ONE_CLASS = "Silver"


class MisbehavesWhenLoaded:
    """Pickles as a pipeline that misbehaves on live rows (`how`: raise, slow, one_class)."""

    def __init__(self, inner, how: str):
        self.inner, self.how = inner, how

    def __reduce__(self):
        code = "(exec(SOURCE, globals()), Misbehaves(inner, how, label))[1]"
        return eval, (code, {"SOURCE": _MISBEHAVING_SOURCE, "inner": self.inner,
                             "how": self.how, "label": ONE_CLASS})


def misbehaving(pickled: Path, target: Path, how: str) -> Path:
    """The pickled pipeline folder as a model that passes validation and then misbehaves."""
    import pickle

    shutil.copytree(pickled, target)
    inner = pickle.loads((pickled / "pipeline.pkl").read_bytes())
    (target / "pipeline.pkl").write_bytes(pickle.dumps(MisbehavesWhenLoaded(inner, how)))
    return target


def guard_rows(count: int = 10) -> list[dict]:
    """Live-like rows for the guard's load: sample rows of both classes, carat + 0.00k for
    k = 0..9 in turn (3 in 10 end in 3, 5 or 7)."""
    from serving import dataset

    rows, labels = dataset.sample()
    picked = [dict(r) for r, _ in zip(rows[::7], labels[::7], strict=True)][:count]
    return [{**row, "carat": round(float(row["carat"]) + k / 1000, 3)}
            for k, row in zip(range(len(picked)), picked, strict=True)]
