"""A run's network as an ONNX file: export, metadata, weight hashes, sessions and the parity
check with PyTorch (``medlens export`` and the service's ONNX engine use them).

The network is exported with ``torch.onnx.export(dynamo=True)`` (``torch.export`` then the
ONNX translator) with a dynamic batch axis; segmentation networks also get dynamic spatial
axes, so a patch of any size the network accepts runs. When the dynamo exporter fails for a
network, the export is retried with fewer dynamic axes and finally with the TorchScript
exporter; every fallback is logged with its reason and recorded in the file's metadata.

The ONNX file holds the raw network (logits); softmax, flip TTA, the run's calibrator
(temperature...), thresholds, the refer band and post-processing stay in medlens, which
applies them to either engine's output. Metadata (``metadata_props``) records the run name,
the task, the class names, the SHA-256 of ``model.pt``, the exporter used and the
calibrator (``calibration``, JSON), so a stale export can be recognised and a reader of the
file alone knows what to apply after the softmax.

Example:
    >>> from medlens.inference.onnx import export_onnx, verify_onnx
    >>> path = export_onnx("runs/pneumonia")  # doctest: +SKIP
    >>> verify_onnx("runs/pneumonia", path, batch) <= 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.data.validation import first_line
from medlens.errors import InputError
from medlens.io_utils import write_atomic
from medlens.run_folder import layout

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
TORCHSCRIPT_OPSET = 17  # the TorchScript exporter's best-supported opset
EXAMPLE_BATCH = 2  # torch.export specialises a dimension whose example size is 1


@dataclass(frozen=True)
class ExportAttempt:
    """One way of exporting: the exporter and which input axes are dynamic."""

    exporter: str  # "dynamo" or "torchscript"
    dynamic_spatial: bool


def weights_sha256(run_dir: str | Path) -> str:
    """SHA-256 (hex) of the run's ``model.pt``: which weights a prediction or export used."""
    digest = hashlib.sha256()
    with open(Path(run_dir) / layout.MODEL, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx(
    run_dir: str | Path, out: str | Path | None = None, opset: int | None = None
) -> Path:
    """Export the run's network to ONNX (written atomically).

    Args:
        run_dir: a finished run folder (classification or segmentation).
        out: the ``.onnx`` file to write; default ``<run_dir>/model.onnx``.
        opset: the ONNX opset; default the exporter's own (dynamo) or 17 (TorchScript).

    Returns:
        The written file. Input ``image`` is ``(batch, C, *spatial)`` float32 preprocessed as
        in training; output ``logits`` is ``(batch, K)`` for classifiers and
        ``(batch, K, *spatial)`` for segmenters.

    Raises:
        InputError: the run folder cannot be loaded, is an ensemble (``refuse_ensemble``),
            or no exporter can export the network.
    """
    from medlens.inference.loaded_run import load_run

    refuse_ensemble(run_dir)
    run = load_run(run_dir, device="cpu")
    model = run.model.eval()
    example = torch.rand(
        EXAMPLE_BATCH, *example_shape(run), generator=torch.Generator().manual_seed(0)
    )
    segmentation = run.task.predicts_masks
    attempts = [ExportAttempt("dynamo", True)] if segmentation else []
    attempts += [ExportAttempt("dynamo", False), ExportAttempt("torchscript", segmentation)]
    failures: list[str] = []
    for attempt in attempts:
        try:
            proto_bytes = _export(model, example, attempt, opset)
        except Exception as exc:  # every exporter has its own failure types
            reason = f"{attempt.exporter} exporter ({_axes(attempt)}) failed: {first_line(exc)}"
            log.warning("ONNX export of %s: %s", run.run_dir.name, reason)
            failures.append(reason)
            continue
        metadata = {
            "medlens_run": run.run_dir.name,
            "medlens_task": run.config.task,
            "class_names": json.dumps(run.class_names),
            "weights_sha256": weights_sha256(run.run_dir),
            "exporter": attempt.exporter,
            "dynamic_axes": _axes(attempt),
            "fallback_reasons": json.dumps(failures),
            # what medlens applies to the logits' softmax, whichever engine ran them
            "calibration": json.dumps(run.trust.calibrator.to_dict()),
        }
        target = Path(out) if out is not None else run.run_dir / layout.ONNX
        return write_atomic(target, _with_metadata(proto_bytes, metadata))
    raise InputError(
        run.run_dir / layout.MODEL,
        "no exporter could export the network to ONNX: " + "; ".join(failures),
    )


def refuse_ensemble(run_dir: str | Path) -> None:
    """Refuse an ensemble run folder: its members are separate networks, combined and
    recalibrated in medlens, so it is no single ONNX graph; each member exports on its own.

    Raises:
        InputError: naming the folder's ``ensemble.json`` and listing the member runs.
    """
    from medlens.inference.ensemble_run import is_ensemble
    from medlens.run_folder.files import read_json

    if not is_ensemble(run_dir):
        return
    record = read_json(Path(run_dir) / layout.ENSEMBLE, required=True)
    members = record.get("members", []) if isinstance(record, dict) else []
    paths = [str(m.get("run")) for m in members if isinstance(m, dict) and m.get("run")]
    raise InputError(
        Path(run_dir) / layout.ENSEMBLE,
        "an ensemble run folder cannot be exported as one ONNX file (its members are "
        "separate networks, combined in medlens); export each member run instead: "
        + (", ".join(paths) if paths else "(it records none)"),
    )


def example_shape(run: Any) -> tuple[int, ...]:
    """``(C, *spatial)`` of one example input: a training image, or a training patch (a side
    the run left variable, recorded as -1, becomes 64 voxels rounded to the size divisor)."""
    if run.input_shape is None:
        raise InputError(
            run.run_dir / layout.MODEL, "records no input shape; re-train to export it"
        )
    patch = run.config.segmentation.patch_size if run.task.predicts_masks else None
    channels, *spatial = run.input_shape
    divisor = int(getattr(run.model, "size_divisor", 1))
    sides = patch or [s if s > 0 else max(divisor, 64 // divisor * divisor) for s in spatial]
    return (channels, *sides)


def _axes(attempt: ExportAttempt) -> str:
    return "batch and spatial" if attempt.dynamic_spatial else "batch"


def _export(
    model: torch.nn.Module, example: torch.Tensor, attempt: ExportAttempt, opset: int | None
) -> bytes:
    spatial = range(2, example.ndim)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # exporter chatter; failures raise
        if attempt.exporter == "dynamo":
            dims: dict[int, Any] = {0: torch.export.Dim("batch")}
            if attempt.dynamic_spatial:
                dims.update({axis: torch.export.Dim(f"spatial_{axis - 2}") for axis in spatial})
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                dynamic_shapes=(dims,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                verbose=False,
            )
            assert program is not None
            return program.model_proto.SerializeToString()
        axes = {0: "batch"}
        if attempt.dynamic_spatial:
            axes.update({axis: f"spatial_{axis - 2}" for axis in spatial})
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / layout.ONNX
            torch.onnx.export(
                model,
                (example,),
                target,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                opset_version=opset or TORCHSCRIPT_OPSET,
            )
            return target.read_bytes()


def _with_metadata(proto_bytes: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_model_from_string(proto_bytes)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def onnx_metadata(onnx_path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (empty for foreign files).

    Raises:
        InputError: the file is missing or not an ONNX model.
    """
    import onnx

    try:
        proto = onnx.load_model(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise InputError(onnx_path, f"is not a readable ONNX model ({first_line(exc)})") from None
    return {entry.key: entry.value for entry in proto.metadata_props}


def onnx_session(onnx_path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` on the CPU.

    Args:
        onnx_path: the ``.onnx`` file.
        threads: intra-op threads; default onnxruntime's own choice (all cores).

    Raises:
        InputError: onnxruntime cannot load the file.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise InputError(onnx_path, f"onnxruntime cannot load it ({first_line(exc)})") from None


def verify_onnx(
    run_dir: str | Path, onnx_path: str | Path, inputs: np.ndarray | Sequence[np.ndarray]
) -> float:
    """The largest absolute difference between the ONNX and PyTorch logits on ``inputs``.

    Both run on the CPU (onnxruntime's CPU provider), in one batch.

    Args:
        run_dir: the run folder the file was exported from.
        onnx_path: the exported file.
        inputs: preprocessed inputs, a batch ``(N, C, *spatial)`` or a list of ``(C, *spatial)``
            (see ``medlens.inference.loaded_run.prepare_input``).

    Returns:
        max |onnx - torch| over every logit (logit units); 0.0 means identical.

    Raises:
        InputError: the run or the file cannot be loaded, the outputs differ in shape, or
            either engine gives NaN or infinite outputs (PyTorch's: naming ``model.pt``).
    """
    from medlens.inference.loaded_run import check_finite_outputs, input_names, load_run

    run = load_run(run_dir, device="cpu")
    batch = np.ascontiguousarray(
        np.stack(list(inputs)) if not isinstance(inputs, np.ndarray) else inputs, dtype=np.float32
    )
    session = onnx_session(onnx_path)
    (onnx_out,) = session.run([OUTPUT_NAME], {session.get_inputs()[0].name: batch})
    with torch.no_grad():
        torch_out = run.model.eval()(torch.from_numpy(batch)).float()
    check_finite_outputs(run, torch_out, input_names(None, len(batch), "check input"))
    if onnx_out.shape != tuple(torch_out.shape):
        raise InputError(
            onnx_path, f"gives outputs of shape {onnx_out.shape}, PyTorch {tuple(torch_out.shape)}"
        )
    if not np.isfinite(onnx_out).all():
        raise InputError(
            onnx_path, "onnxruntime gives NaN or infinite outputs where PyTorch's are finite"
        )
    diff = np.abs(onnx_out.astype(np.float64) - torch_out.numpy().astype(np.float64))
    return float(np.max(diff))


def fit_to_shape(array: np.ndarray, shape: tuple[int, ...], source: str | Path) -> np.ndarray:
    """``array`` ``(C, *spatial)`` centre-cropped and zero-padded to ``shape`` (voxels): a
    whole image made into one input of a patch-trained network.

    Raises:
        InputError: naming ``source`` when the channels or the number of axes differ.
    """
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
