"""``medlens export RUN --format onnx``: export the run's network (``medlens.inference.onnx``)
and check the file against PyTorch on the given images or on seeded random inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlens.errors import ConfigError, InputError
from medlens.inference.onnx import example_shape, export_onnx, onnx_metadata, verify_onnx


@dataclass(frozen=True)
class ExportReport:
    """What ``export_run`` wrote and how closely it matches PyTorch.

    Attributes:
        path: the ONNX file.
        max_abs_diff: max |onnx - torch| over the check inputs' logits.
        n_checked: how many inputs were compared.
        checked_on: ``"images"`` (the given files, preprocessed by the run) or ``"random"``
            (seeded uniform [0, 1) inputs of the training shape).
        exporter: ``"dynamo"`` or ``"torchscript"`` (a fallback; the reason was logged).
    """

    path: Path
    max_abs_diff: float
    n_checked: int
    checked_on: str
    exporter: str


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    opset: int | None = None,
    check_images: Sequence[str | Path] = (),
    seed: int = 0,
) -> ExportReport:
    """``medlens export RUN_DIR --format onnx [--out FILE] [--check IMAGE...]``.

    Exports (``export_onnx``) and checks the file against PyTorch (``verify_onnx``) on the
    given images, preprocessed as in training (a segmentation run's images are centre-cropped
    or zero-padded to its training patch), or on 4 seeded random inputs when none are given.

    Raises:
        ConfigError: a format other than ``onnx``.
        InputError: the run, an image or the export fails.
    """
    if fmt != "onnx":
        raise ConfigError("--format", f"only 'onnx' is supported, not {fmt!r}")
    path = export_onnx(run_dir, out=out, opset=opset)
    batch = check_batch(run_dir, check_images, seed=seed)
    diff = verify_onnx(run_dir, path, batch)
    return ExportReport(
        path=path,
        max_abs_diff=diff,
        n_checked=len(batch),
        checked_on="images" if check_images else "random",
        exporter=onnx_metadata(path).get("exporter", "unknown"),
    )


def check_batch(
    run_dir: str | Path, images: Sequence[str | Path] = (), seed: int = 0, n_random: int = 4
) -> np.ndarray:
    """Inputs ``(N, C, *spatial)`` for a parity check: ``images`` read and preprocessed by the
    run (segmentation: cropped/padded to the training patch), or seeded uniform noise."""
    from medlens.data.readers import read_image
    from medlens.inference.loaded_run import load_run, prepare_input

    run = load_run(run_dir, device="cpu")
    shape = example_shape(run)
    if not images:
        return np.random.default_rng(seed).random((n_random, *shape), dtype=np.float32)
    if not run.task.predicts_masks:
        return np.stack([prepare_input(run, read_image(p)) for p in images])
    return np.stack([_fit(run.preprocess(read_image(p)).array, shape, p) for p in images])


def _fit(array: np.ndarray, shape: tuple[int, ...], source: str | Path) -> np.ndarray:
    """``array`` centre-cropped and zero-padded to ``shape`` (voxels)."""
    if array.shape[0] != shape[0] or array.ndim != len(shape):
        raise InputError(source, f"preprocessed to {array.shape}, the network takes {shape}")
    out = np.zeros(shape, dtype=np.float32)
    src, dst = [slice(None)], [slice(None)]
    for have, want in zip(array.shape[1:], shape[1:], strict=True):
        start = max((have - want) // 2, 0)
        size = min(have, want)
        src.append(slice(start, start + size))
        dst.append(slice(0, size))
    out[tuple(dst)] = array[tuple(src)]
    return out
