"""The model files the benchmarks serve: trained once and cached, plus padded and huge ones."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from devkit.models import TrainedModels, cache_key, train_all

CLASSIFIER = "diamonds-classifier"
PAD_NAME = "embeddings.bin"
_BLOCK = 8 * 2**20


def trained() -> TrainedModels:
    """Our layout (baseline, alternative) and the seed's five pickles, seed 42, cached."""
    root = Path(os.environ.get("BENCH_CACHE") or Path(tempfile.gettempdir()) / "bench-models")
    root.mkdir(parents=True, exist_ok=True)
    return train_all(root / cache_key())


def random_bytes(handle, size: int, seed: int = 0) -> None:
    """Write size incompressible bytes to an open binary file, a block at a time."""
    rng = np.random.default_rng(seed)
    left = size
    while left > 0:
        block = min(left, _BLOCK)
        handle.write(rng.bytes(block))
        left -= block


def padded(source: Path, target: Path, size: int, seed: int = 0) -> Path:
    """A copy of a model folder grown to about `size` bytes by one incompressible data file."""
    shutil.copytree(source, target)
    have = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    with open(target / PAD_NAME, "wb") as handle:
        random_bytes(handle, max(size - have, 0), seed)
    return target


def zip_model(folder: Path, target: Path) -> Path:
    """Zip a model folder as a registry version: small files deflated, the padding stored."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                method = zipfile.ZIP_STORED if path.name == PAD_NAME else zipfile.ZIP_DEFLATED
                archive.write(path, path.relative_to(folder).as_posix(), compress_type=method)
    return target


def huge_zip(target: Path, size: int, seed: int = 1, files: int = 1) -> Path:
    """A zip of `files` stored files, `size` incompressible bytes in all, written streamed."""
    with zipfile.ZipFile(target, "w") as archive:
        for index in range(files):
            name = "weights.bin" if files == 1 else f"weights-{index}.bin"
            part = size // files + (size % files if index == files - 1 else 0)
            with archive.open(zipfile.ZipInfo(name), "w", force_zip64=True) as member:
                random_bytes(member, part, seed + index)
    return target
