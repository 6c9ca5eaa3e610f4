"""The demo's second model kind (`--price`): a regressor of diamond prices, served beside the
classifier by a pod of its own (its sidecar following `diamond-price`, its serving on its ports).

The model is trained from the bundled data and described by `registry-sync describe`
(devkit.own_models), then registered as 1.0.0 in Production: what docs/own-model.md tells a
team to do with its own model.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

PRICE_MODEL = "diamond-price"


def price_envs(args: argparse.Namespace, home: Path, env: dict[str, str],
               serving_env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The price pod's sidecar and serving settings: the classifier's, on its own ports and
    folders, following the price model."""
    sidecar = {**env, "MODEL_ROOT": str(home / "price-models"), "REGISTRY_MODELS": PRICE_MODEL,
               "SERVING_URL": f"http://127.0.0.1:{args.price_admin_port}",
               "SIDECAR_LISTEN": f"127.0.0.1:{args.price_sidecar_port}"}
    serving = {**serving_env, **{k: sidecar[k] for k in ("MODEL_ROOT", "REGISTRY_MODELS")},
               "BIND": f"127.0.0.1:{args.price_port}", "ADMIN_PORT": str(args.price_admin_port),
               "PROMETHEUS_MULTIPROC_DIR": str(home / "price-metrics")}
    return sidecar, serving


def described_price_model(work: Path) -> Path:
    """Train the price regressor on the bundled data and describe it: its folder."""
    from devkit.own_models import bundled_sample, train_and_describe

    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        trained = train_and_describe("price", bundled_sample(), Path(scratch))
        target = work / "price-1.0.0"
        if not target.exists():
            trained.folder.rename(target)
    return target
