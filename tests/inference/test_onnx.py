"""ONNX export: parity with PyTorch on real inputs, dynamic axes, metadata, the fallback."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import medlens.inference.onnx as export_module
from medlens.commands.export import export_run
from medlens.data.image import Image
from medlens.data.readers import read_image
from medlens.errors import ConfigError, InputError
from medlens.inference.loaded_run import load_run, predict_arrays, prepare_input
from medlens.inference.onnx import export_onnx, onnx_metadata, verify_onnx

TOLERANCE = 1e-4  # logits


def _input_dims(path: Path) -> list[str | int]:
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def _pneumonia_batch(run_dir: Path, images: np.ndarray) -> np.ndarray:
    run = load_run(run_dir, device="cpu")
    cases = [Image(array=im[None].astype(np.float32), spacing=(1.0, 1.0)) for im in images]
    return np.stack([prepare_input(run, case) for case in cases])


def test_a_classifier_exports_with_a_dynamic_batch_and_matches_pytorch(
    pneumonia_run: Path, pneumonia_test_images: np.ndarray
):
    path = export_onnx(pneumonia_run)
    assert path == pneumonia_run / "model.onnx"
    dims = _input_dims(path)
    assert isinstance(dims[0], str) and dims[1:] == [1, 28, 28]

    batch = _pneumonia_batch(pneumonia_run, pneumonia_test_images[:5])
    assert verify_onnx(pneumonia_run, path, batch[:1]) <= TOLERANCE
    assert verify_onnx(pneumonia_run, path, batch) <= TOLERANCE

    # independently: onnxruntime's softmax, then the run's calibrator (which medlens applies
    # after either engine, issue 16), equals medlens' own PyTorch prediction path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: batch})[0]
    onnx_probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    run = load_run(pneumonia_run, device="cpu")
    torch_probs = predict_arrays(run, list(batch))
    np.testing.assert_allclose(run.trust.calibrator.transform(onnx_probs), torch_probs, atol=1e-5)
    assert json.loads(onnx_metadata(path)["calibration"]) == run.trust.calibrator.to_dict()

    meta = onnx_metadata(path)
    expected_sha = hashlib.sha256((pneumonia_run / "model.pt").read_bytes()).hexdigest()
    assert meta["weights_sha256"] == expected_sha
    assert json.loads(meta["class_names"]) == ["normal", "pneumonia"]
    assert meta["exporter"] == "dynamo" and json.loads(meta["fallback_reasons"]) == []


def test_a_segmenter_exports_with_dynamic_batch_and_spatial_axes(
    drive_run: Path, drive_dir: Path, tmp_path: Path
):
    path = export_onnx(drive_run, out=tmp_path / "unet.onnx")
    dims = _input_dims(path)
    assert dims[1] == 1 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))

    run = load_run(drive_run, device="cpu")
    image = run.preprocess(read_image(drive_dir / "test" / "images" / "01_test.tif")).array
    assert image.shape == (1, 96, 96)
    corners = [(0, 0), (32, 32), (0, 32), (32, 0), (16, 16)]
    patches = np.stack([image[:, r : r + 64, c : c + 64] for r, c in corners])
    assert verify_onnx(drive_run, path, patches[:1]) <= TOLERANCE
    assert verify_onnx(drive_run, path, patches) <= TOLERANCE
    # the whole preprocessed image, a size the export never saw
    assert verify_onnx(drive_run, path, image[None]) <= TOLERANCE
    assert onnx_metadata(path)["dynamic_axes"] == "batch and spatial"


def test_a_failing_dynamo_export_falls_back_to_torchscript_and_says_why(
    pneumonia_run: Path,
    pneumonia_test_images: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    real_export = export_module._export

    def dynamo_breaks(model, example, attempt, opset):
        if attempt.exporter == "dynamo":
            raise RuntimeError("unsupported operator aten::made_up")
        return real_export(model, example, attempt, opset)

    monkeypatch.setattr(export_module, "_export", dynamo_breaks)
    with caplog.at_level(logging.WARNING, logger="medlens.inference.onnx"):
        path = export_onnx(pneumonia_run, out=tmp_path / "ts.onnx")
    assert "aten::made_up" in caplog.text and "dynamo exporter" in caplog.text
    meta = onnx_metadata(path)
    assert meta["exporter"] == "torchscript"
    assert "aten::made_up" in json.loads(meta["fallback_reasons"])[0]
    batch = _pneumonia_batch(pneumonia_run, pneumonia_test_images[:5])
    assert verify_onnx(pneumonia_run, path, batch[:1]) <= TOLERANCE
    assert verify_onnx(pneumonia_run, path, batch) <= TOLERANCE


def test_export_run_checks_the_given_images(
    pneumonia_run: Path, pneumonia_test_images: np.ndarray, png_bytes, tmp_path: Path
):
    files = []
    for k, image in enumerate(pneumonia_test_images[:3]):
        files.append(tmp_path / f"case{k}.png")
        files[-1].write_bytes(png_bytes(image))
    report = export_run(pneumonia_run, out=tmp_path / "m.onnx", check_images=files)
    assert (report.n_checked, report.checked_on) == (3, "images")
    assert report.max_abs_diff <= TOLERANCE and report.path.is_file()
    with pytest.raises(ConfigError, match="onnx"):
        export_run(pneumonia_run, fmt="tflite")
    with pytest.raises(InputError, match="run folder not found"):
        export_onnx(tmp_path / "no_such_run")
