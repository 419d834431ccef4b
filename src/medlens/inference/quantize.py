"""int8 ONNX: a run's exported network quantised by onnxruntime, calibrated on real images.

Static quantisation (onnxruntime ``quantize_static``): weights int8 per output channel,
activations uint8 with scales set from the ranges the network meets on a calibration set, in
the QDQ format that onnxruntime's CPU kernels fuse into integer convolutions. The float model
is first simplified (``quant_pre_process``: shape inference and graph optimisation).

The calibration set is drawn, seeded, from the run's own training split and preprocessed as in
training (the validation and test splits are never looked at), or given as image files. The
file records how it was made in its metadata, beside the float export's keys
(``weights_sha256`` names the ``model.pt`` it came from), so a stale file is recognised.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic
from medlens.run_folder import layout

#: Calibration images drawn from the training split by default.
CALIBRATION_IMAGES = 128
#: Images per calibration batch (memory, not accuracy).
CALIBRATION_BATCH = 16


def calibration_images(
    run: Any, n: int = CALIBRATION_IMAGES, seed: int = 0, images: Sequence[str | Path] = ()
) -> np.ndarray:
    """``(N, C, *spatial)`` float32 inputs of the run's network for calibration.

    Args:
        run: a ``LoadedRun``.
        n: how many training images to draw (all when the split has fewer).
        seed: the draw.
        images: image files to use instead of the training split (preprocessed by the run).

    Raises:
        InputError: the run's data cannot be opened (give ``images`` then), or it has no
            training case.
    """
    from medlens.data.readers import read_image
    from medlens.inference.loaded_run import prepare_input
    from medlens.inference.onnx import example_shape, fit_to_shape

    shape = example_shape(run)

    def prepare(image: Any) -> np.ndarray:
        if not run.task.predicts_masks:  # a classifier takes its training shape only
            return prepare_input(run, image)
        x = run.preprocess(image).array.astype(np.float32, copy=False)
        return fit_to_shape(x, shape, image.source)  # a segmenter: one training patch

    if images:
        return np.stack([prepare(read_image(p)) for p in images])
    from medlens.data.sources import open_source

    try:
        case_set = open_source(run.config.data)
    except InputError as exc:
        raise InputError(
            exc.path,
            f"{exc.reason}; the calibration images come from the run's training split, so "
            "give image files with --calibration instead",
        ) from None
    train = [c for c in case_set.cases if c.split == "train"]
    if not train:
        raise InputError(run.config.data.path, "has no training case to calibrate on")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(train), size=min(n, len(train)), replace=False))
    return np.stack([prepare(case_set.load(train[int(i)])) for i in chosen])


class _Batches:
    """onnxruntime's ``CalibrationDataReader``: the calibration set, a batch at a time."""

    def __init__(self, input_name: str, data: np.ndarray) -> None:
        self.input_name = input_name
        self.data = data
        self.batches = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.data), CALIBRATION_BATCH):
            yield {self.input_name: self.data[start : start + CALIBRATION_BATCH]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)

    def rewind(self) -> None:
        self.batches = self._batches()


def quantize_onnx(
    fp32_path: str | Path, out: str | Path, calibration: np.ndarray, note: str = ""
) -> Path:
    """Write the int8 (QDQ, per-channel) twin of the float ONNX file ``fp32_path``.

    Args:
        fp32_path: a medlens ONNX export (``export_onnx``).
        out: the int8 file (written atomically).
        calibration: ``(N, C, *spatial)`` float32 inputs (``calibration_images``).
        note: where the calibration set came from, for the metadata (``int8_calibration``;
            ``calibration`` keeps the float export's record of the run's calibrator).

    Raises:
        InputError: onnxruntime cannot quantise the network.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from medlens.data.validation import first_line
    from medlens.inference.onnx import INPUT_NAME, onnx_metadata

    if calibration.ndim < 3 or not len(calibration):
        raise ConfigError("calibration", "needs at least one (C, *spatial) input")
    metadata = onnx_metadata(fp32_path)
    with tempfile.TemporaryDirectory() as folder:
        simplified, quantised = Path(folder) / "pre.onnx", Path(folder) / "int8.onnx"
        try:
            quant_pre_process(str(fp32_path), str(simplified))
            quantize_static(
                str(simplified),
                str(quantised),
                _Batches(INPUT_NAME, np.ascontiguousarray(calibration, dtype=np.float32)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
            )
        except Exception as exc:  # onnxruntime raises many types
            reason = f"onnxruntime cannot quantise it ({first_line(exc)})"
            raise InputError(fp32_path, reason) from None
        proto = onnx.load_model(str(quantised))
    del proto.metadata_props[:]
    metadata.update(
        quantization="int8 static, QDQ, per-channel int8 weights, uint8 activations",
        int8_calibration=note or f"{len(calibration)} inputs",
        float_model=Path(fp32_path).name,
    )
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return write_atomic(out, proto.SerializeToString())


def quantize_run(
    run_dir: str | Path,
    fp32_path: str | Path | None = None,
    out: str | Path | None = None,
    n_calibration: int = CALIBRATION_IMAGES,
    seed: int = 0,
    calibration_files: Sequence[str | Path] = (),
) -> Path:
    """The run's int8 ONNX file (default ``<run>/model.int8.onnx``), from its float export
    (default ``<run>/model.onnx``, exported first when missing or stale).

    Raises:
        InputError: the run, its data or the quantisation fails.
    """
    from medlens.inference.loaded_run import load_run
    from medlens.inference.onnx import export_onnx, onnx_metadata, weights_sha256

    run_dir = Path(run_dir)
    fp32 = Path(fp32_path) if fp32_path is not None else run_dir / layout.ONNX
    if not fp32.is_file() or onnx_metadata(fp32).get("weights_sha256") != weights_sha256(run_dir):
        fp32 = export_onnx(run_dir, out=fp32)
    run = load_run(run_dir, device="cpu")
    data = calibration_images(run, n_calibration, seed, calibration_files)
    note = (
        f"{len(data)} given image files"
        if calibration_files
        else f"{len(data)} images of the training split (seed {seed})"
    )
    target = Path(out) if out is not None else run_dir / layout.ONNX_INT8
    return quantize_onnx(fp32, target, data, note=json.dumps(note)[1:-1])
