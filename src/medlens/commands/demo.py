"""``medlens demo`` / ``make demo``: the main job on real data, with a report at the end."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from medlens.config import parse_config
from medlens.errors import InputError

DEMO_FLAG = "pneumoniamnist"
DEMO_FILE = "pneumoniamnist.npz"  # the official 28 px file name of DEMO_FLAG
DATA_DIR_ENV = "MEDLENS_DATA_DIR"
DEFAULT_DATA_DIR = Path("data") / "medmnist"

log = logging.getLogger(__name__)


def demo_config(data: Path, output_dir: Path, minutes: float) -> dict:
    """ResNet-18 on PneumoniaMNIST resized to 64 px, with flips, affine and contrast
    augmentation, a class-weighted loss, a cosine schedule fitted to ``minutes`` and the
    threshold chosen on validation (the recipe of configs/pneumoniamnist_resnet18.yaml)."""
    return {
        "name": "demo-pneumoniamnist-resnet18",
        "seed": 0,
        "output_dir": str(output_dir),
        "data": {"format": "medmnist", "path": str(data)},
        "preprocess": [
            {"name": "fixed_scale", "divisor": 255},
            {"name": "resize", "size": [64, 64]},
        ],
        "augment": [
            {"name": "random_flip", "axes": [-1], "p": 0.5},
            {"name": "random_affine", "degrees": 15, "scale": 0.15, "translation": 6, "p": 0.8},
            {"name": "random_brightness_contrast", "p": 0.5},
        ],
        "model": {"name": "resnet18", "cifar_stem": False},
        "train": {
            "epochs": 60,
            "batch_size": 128,
            "lr": 2e-3,
            "max_minutes": minutes,
            "early_stopping_patience": None,
            "tta_flip": True,
        },
        "evaluate": {"n_bootstrap": 1000},
    }


def demo_data_dir() -> Path:
    """Cache folder of downloaded demo data: ``$MEDLENS_DATA_DIR`` when set (and non-empty),
    else ``data/medmnist`` under the current working directory (ignored by the repo's git)."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.cwd() / DEFAULT_DATA_DIR


def resolve_demo_data(data: Path, cache_dir: Path | None = None, timeout_s: float = 60.0) -> Path:
    """The PneumoniaMNIST file the demo trains on.

    ``data`` itself when it is a file, or ``data/pneumoniamnist.npz`` when ``data`` is a
    folder holding it. Otherwise, when the missing file is ``pneumoniamnist.npz``, the
    official 28 px MedMNIST v2 file in ``cache_dir`` (default :func:`demo_data_dir`): used
    as it is when already there and its MD5 is the official one, else downloaded there
    (:func:`~medlens.data.medmnist_download.download_medmnist`, MD5-checked). Nothing is
    created beside ``data`` (its folder, e.g. ``../shared``, may not exist).

    Raises:
        InputError: one line naming the missing file, the file to fetch (with its URL) and the
            folder to put it in, when the file is absent and cannot be downloaded or verified
            (offline, HTTP error, wrong MD5), or when a missing file of another name is asked
            for (nothing is downloaded in its place).
    """
    from medlens.data.medmnist_catalog import medmnist_url
    from medlens.data.medmnist_download import download_medmnist

    data = Path(data)
    if data.is_file():
        return data
    target = data if data.suffix == ".npz" else data / DEMO_FILE
    if target.is_file():
        return target
    if target.name != DEMO_FILE:
        raise InputError(
            target,
            f"file not found; pass --data PATH to a MedMNIST .npz, or leave --data out to use "
            f"the official {DEMO_FILE}",
        )
    cache = Path(cache_dir) if cache_dir is not None else demo_data_dir()
    cached = cache / DEMO_FILE
    if not cached.is_file():
        log.warning("%s not found; downloading PneumoniaMNIST into %s", target, cache)
    try:
        return download_medmnist(DEMO_FLAG, size=28, root=cache, timeout_s=timeout_s)
    except InputError as exc:
        cause = exc.__cause__  # set for a failed download, not for a wrong MD5
        why = (
            f"downloading it failed ({getattr(cause, 'reason', cause)})"
            if cause is not None
            else f"the file found or downloaded is unusable ({exc})"
        )
        raise InputError(
            target,
            f"PneumoniaMNIST not found, and {why}. Put the MedMNIST v2 file {DEMO_FILE} "
            f"({medmnist_url(DEMO_FLAG, 28)}) in {cache.resolve()}, or run "
            f"`medlens download {DEMO_FLAG} --root {cache}` when online, or pass --data PATH",
        ) from exc


def run_demo(data: Path, output_dir: Path = Path("runs"), minutes: float = 4.0) -> Path:
    """Train the demo model on :func:`resolve_demo_data` of ``data`` and write its report.

    A missing ``data`` is downloaded into the cache folder when online; when it cannot be,
    the InputError says which file to put where. Returns the run folder.
    """
    from medlens.commands.train import train_and_report

    data = resolve_demo_data(data)
    config = parse_config(demo_config(data, output_dir, minutes))
    return train_and_report(config, overwrite=True)
