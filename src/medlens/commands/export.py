"""``medlens export RUN --format onnx``: export the run's network (``medlens.inference.onnx``)
and check the file against PyTorch on the given images or on seeded random inputs."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlens.errors import ConfigError, InputError
from medlens.inference.onnx import (
    OUTPUT_NAME,
    example_shape,
    export_onnx,
    fit_to_shape,
    onnx_metadata,
    onnx_session,
    refuse_ensemble,
    verify_onnx,
)
from medlens.io_utils import write_atomic
from medlens.run_folder import layout


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
    int8_path: Path | None = None
    int8_max_abs_diff: float | None = None
    int8_decisions_agree: float | None = None


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    opset: int | None = None,
    check_images: Sequence[str | Path] = (),
    seed: int = 0,
    quantize: str | None = None,
    calibration: Sequence[str | Path] = (),
) -> ExportReport:
    """``medlens export RUN_DIR --format onnx [--out FILE] [--check IMAGE...]
    [--quantize int8 [--calibration IMAGE...]]``.

    With ``quantize="int8"`` the float file is also quantised (``medlens.inference.quantize``:
    static, calibrated on training images, or on ``calibration`` files) into
    ``model.int8.onnx`` beside it, and checked on the same inputs: the largest logit
    difference and the share of inputs whose arg-max decision is unchanged.

    Exports (``export_onnx``) and checks the file against PyTorch (``verify_onnx``) on the
    given images, preprocessed as in training (a segmentation run's images are centre-cropped
    or zero-padded to its training patch), or on 4 seeded random inputs when none are given.

    The file is written only once the check passed: a failed export or check (a NaN
    difference included) leaves nothing behind.

    Raises:
        ConfigError: a format other than ``onnx``.
        InputError: the run (an ensemble folder: export its members), an image, the export
            or the check fails.
    """
    if fmt != "onnx":
        raise ConfigError("--format", f"only 'onnx' is supported, not {fmt!r}")
    if quantize not in (None, "int8"):
        raise ConfigError("--quantize", f"only 'int8' is supported, not {quantize!r}")
    refuse_ensemble(run_dir)
    batch = check_batch(run_dir, check_images, seed=seed)  # bad images fail before writing
    target = Path(out) if out is not None else Path(run_dir) / layout.ONNX
    path, diff = _export_checked(run_dir, target, opset, batch)
    report = ExportReport(
        path=path,
        max_abs_diff=diff,
        n_checked=len(batch),
        checked_on="images" if check_images else "random",
        exporter=onnx_metadata(path).get("exporter", "unknown"),
    )
    if quantize is None:
        return report
    from medlens.inference.quantize import quantize_run

    int8 = quantize_run(
        run_dir, fp32_path=path, out=path.with_name(layout.ONNX_INT8), seed=seed,
        calibration_files=calibration,
    )  # fmt: skip
    float_logits, int8_logits = _logits(path, batch), _logits(int8, batch)
    axis = 1
    agree = float(np.mean(float_logits.argmax(axis) == int8_logits.argmax(axis)))
    return dataclasses.replace(
        report,
        int8_path=int8,
        int8_max_abs_diff=float(np.max(np.abs(float_logits - int8_logits))),
        int8_decisions_agree=agree,
    )


def _export_checked(
    run_dir: str | Path, target: Path, opset: int | None, batch: np.ndarray
) -> tuple[Path, float]:
    """Export into a scratch folder, check the file on ``batch`` and only then write it to
    ``target`` (atomically): a failed check leaves nothing behind, and an earlier export at
    ``target`` as it was. Returns the file and max |ONNX - PyTorch| (logit units).

    Raises:
        InputError: the export or the check fails, or the difference is not a finite
            number (NaN compares false with every tolerance).
    """
    with tempfile.TemporaryDirectory(prefix="medlens-export-") as scratch:
        candidate = export_onnx(run_dir, out=Path(scratch) / target.name, opset=opset)
        diff = verify_onnx(run_dir, candidate, batch)
        if not np.isfinite(diff):
            raise InputError(
                target, f"max |ONNX - PyTorch| is {diff} on the check inputs, not a finite number"
            )
        return write_atomic(target, candidate.read_bytes()), diff


def _logits(onnx_path: Path, batch: np.ndarray) -> np.ndarray:
    session = onnx_session(onnx_path)
    (logits,) = session.run([OUTPUT_NAME], {session.get_inputs()[0].name: batch})
    return np.asarray(logits, dtype=np.float64)


def check_batch(
    run_dir: str | Path, images: Sequence[str | Path] = (), seed: int = 0, n_random: int = 4
) -> np.ndarray:
    """Inputs ``(N, C, *spatial)`` for a parity check: the images in ``images`` (files and
    folders, found as ``medlens predict`` finds them: ``iter_input_cases``) read and
    preprocessed by the run (segmentation: cropped/padded to the training patch), or seeded
    uniform noise when none are given.

    Raises:
        InputError: the run cannot be loaded, an input is missing or unreadable, or the
            given folders hold no image.
    """
    from medlens.inference.discovery import iter_input_cases
    from medlens.inference.loaded_run import load_run, prepare_input

    run = load_run(run_dir, device="cpu")
    shape = example_shape(run)
    if not images:
        return np.random.default_rng(seed).random((n_random, *shape), dtype=np.float32)
    volumes = run.input_shape is not None and len(run.input_shape) == 4
    arrays = []
    for case_id, _, load in iter_input_cases([Path(p) for p in images], volumes=volumes):
        if run.task.predicts_masks:
            arrays.append(fit_to_shape(run.preprocess(load()).array, shape, case_id))
        else:
            arrays.append(prepare_input(run, load()))
    if not arrays:
        raise InputError(", ".join(str(p) for p in images), "holds no image to check on")
    return np.stack(arrays)
