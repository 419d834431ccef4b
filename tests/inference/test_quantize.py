"""int8 ONNX: quantised on training images, close to the float export on real test images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from medlens.cli import app
from medlens.data.image import Image
from medlens.data.medmnist import load_medmnist_npz
from medlens.errors import ConfigError
from medlens.inference.loaded_run import load_run, prepare_input
from medlens.inference.onnx import OUTPUT_NAME, onnx_metadata, onnx_session, weights_sha256
from medlens.inference.quantize import calibration_images, quantize_run
from medlens.serve.models_store import load_models


@pytest.fixture(scope="module")
def run_copy(pneumonia_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the small run, so its ONNX files stay out of the shared fixture."""
    target = tmp_path_factory.mktemp("int8") / "pneumonia"
    shutil.copytree(pneumonia_run, target)
    return target


@pytest.fixture(scope="module")
def test_split(run_copy: Path, pneumonia_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    """300 real PneumoniaMNIST test images, preprocessed by the run, and their labels."""
    data = load_medmnist_npz(pneumonia_npz)
    images, labels = data.images["test"][:300], data.labels["test"][:300].ravel()
    run = load_run(run_copy, device="cpu")
    batch = [
        prepare_input(run, Image(array=im[None].astype(np.float32), spacing=(1.0, 1.0)))
        for im in images
    ]
    return np.stack(batch), labels


def _probabilities(path: Path, batch: np.ndarray) -> np.ndarray:
    session = onnx_session(path, threads=1)
    (logits,) = session.run([OUTPUT_NAME], {session.get_inputs()[0].name: batch})
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_int8_keeps_the_float_model_s_decisions_on_real_test_images(
    run_copy: Path, test_split: tuple[np.ndarray, np.ndarray]
) -> None:
    int8 = quantize_run(run_copy, n_calibration=64)
    fp32 = run_copy / "model.onnx"
    assert int8 == run_copy / "model.int8.onnx" and fp32.is_file()
    batch, labels = test_split
    p_float, p_int8 = _probabilities(fp32, batch), _probabilities(int8, batch)
    assert np.abs(p_float - p_int8).max() < 0.05
    assert abs(roc_auc_score(labels, p_float[:, 1]) - roc_auc_score(labels, p_int8[:, 1])) < 0.01
    assert int8.stat().st_size < fp32.stat().st_size
    meta = onnx_metadata(int8)
    assert meta["weights_sha256"] == weights_sha256(run_copy)
    assert meta["quantization"].startswith("int8 static")
    assert "64 images of the training split" in meta["int8_calibration"]
    # the run's calibrator stays recorded, as in the float export (the service checks it)
    assert json.loads(meta["calibration"]) == json.loads(onnx_metadata(fp32)["calibration"])


def test_calibration_draws_only_training_images(run_copy: Path, pneumonia_npz: Path) -> None:
    run = load_run(run_copy, device="cpu")
    drawn = calibration_images(run, n=20, seed=1)
    train = load_medmnist_npz(pneumonia_npz).images["train"].astype(np.float32) / 255.0
    # every drawn input is a training image (the run's preprocessing divides by 255)
    flat = train.reshape(len(train), -1)
    for x in drawn:
        assert np.isclose(flat, x.reshape(1, -1), atol=1e-6).all(axis=1).any()
    assert np.array_equal(drawn, calibration_images(run, n=20, seed=1))  # seeded


def test_the_cli_writes_int8_and_the_service_runs_it(run_copy: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(run_copy), "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    assert "(int8)" in result.output and "decisions unchanged" in result.output
    served = load_models([run_copy], engine="onnx-int8")["pneumonia"]
    assert served.describe()["engine"] == "onnx-int8"


def test_the_int8_engine_refuses_a_run_without_a_current_int8_file(
    pneumonia_run: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(pneumonia_run, bare, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(ConfigError, match="--quantize int8"):
        load_models([bare], engine="onnx-int8")
