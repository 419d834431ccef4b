"""``load_run`` and its predictions where trust is at stake: a run's calibration record must
be there when it was calibrated, and a network giving NaN says so, naming ``model.pt``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.inference.loaded_run import load_run, predict_arrays, predict_images
from medlens.trust.calibrators import Uncalibrated


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = Path(shutil.copytree(run, tmp_path / run.name))
    (copy / "model.onnx").unlink(missing_ok=True)
    return copy


def _images(pneumonia_test_images: np.ndarray, n: int) -> list[Image]:
    return [
        Image(array=im[None].astype(np.float32), spacing=(1.0, 1.0), source=f"case{i}.png")
        for i, im in enumerate(pneumonia_test_images[:n])
    ]


def test_a_run_made_before_calibration_loads_uncalibrated_and_predicts_raw(
    pneumonia_run: Path, pneumonia_test_images: np.ndarray, tmp_path: Path
) -> None:
    old = _copy(pneumonia_run, tmp_path)
    (old / "calibration.json").unlink()
    (old / "ood.npz").unlink(missing_ok=True)
    metrics = json.loads((old / "metrics.json").read_text())
    del metrics["trust"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    labels = json.loads((old / "labels.json").read_text())
    del labels["refer"]
    (old / "labels.json").write_text(json.dumps(labels))
    config = yaml.safe_load((old / "config.yaml").read_text())
    del config["calibration"]  # nor a calibration key in its config.yaml
    (old / "config.yaml").write_text(yaml.safe_dump(config))

    run = load_run(old, device="cpu")
    assert run.trust.calibrator == Uncalibrated()
    images = _images(pneumonia_test_images, 4)
    probs = predict_images(run, images)
    batch = torch.from_numpy(np.stack([run.preprocess(im).array for im in images]))
    with torch.no_grad():
        raw = torch.softmax(run.model(batch.float()), dim=1).numpy()
    np.testing.assert_allclose(probs, raw, atol=1e-6)


@pytest.mark.parametrize("record", [None, "{}"])
def test_a_calibrated_run_without_a_valid_calibration_json_does_not_load(
    pneumonia_run: Path, tmp_path: Path, record: str | None
) -> None:
    run = _copy(pneumonia_run, tmp_path)
    if record is None:
        (run / "calibration.json").unlink()
    else:
        (run / "calibration.json").write_text(record)
    with pytest.raises(InputError) as caught:
        load_run(run, device="cpu")
    assert caught.value.path == str(run / "calibration.json")


def test_a_segmentation_run_refuses_a_calibrator_segmentation_never_fits(
    drive_run: Path, tmp_path: Path
) -> None:
    """What predict, export and serve load: a bcts record in a segmentation run (the audit's)."""
    run = _copy(drive_run, tmp_path)
    (run / "calibration.json").write_text('{"method": "bcts", "temperature": 1, "bias": [0.5]}')
    with pytest.raises(InputError, match="segmentation runs fit only temperature or none") as e:
        load_run(run, device="cpu")
    assert e.value.path == str(run / "calibration.json")


@pytest.mark.parametrize("fixture", ["drive_run", "pneumonia_run"])
def test_a_calibration_json_contradicting_the_run_does_not_load(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run = _copy(request.getfixturevalue(fixture), tmp_path)
    (run / "calibration.json").write_text('{"method": "none"}')
    with pytest.raises(InputError, match="records method 'none', but metrics.json records") as e:
        load_run(run, device="cpu")
    assert e.value.path == str(run / "calibration.json")
    (run / "calibration.json").unlink()  # and without the file and metrics.json's record
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["trust"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(InputError, match="missing, but config.yaml records calibration.method"):
        load_run(run, device="cpu")


def test_nan_logits_are_one_error_naming_model_pt_and_the_input(
    nan_run: Path, pneumonia_test_images: np.ndarray
) -> None:
    run_dir = nan_run

    run = load_run(run_dir, device="cpu")
    images = _images(pneumonia_test_images, 3)
    with pytest.raises(InputError, match=r"non-finite outputs \(NaN/inf\) for case0.png") as e:
        predict_images(run, images)
    assert e.value.path == str(run_dir / "model.pt")
    arrays = [np.asarray(run.preprocess(im).array, dtype=np.float32) for im in images]
    with pytest.raises(InputError, match="for input 0 of the 3 given") as e:
        predict_arrays(run, arrays)
    assert e.value.path == str(run_dir / "model.pt")


def test_predict_names_the_file_whose_network_output_is_not_finite(
    nan_run: Path, pneumonia_test_images: np.ndarray, png_bytes, tmp_path: Path
) -> None:
    from medlens.inference.classify import predict_files

    run_dir = nan_run
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(pneumonia_test_images[:2]):
        (folder / f"chest_{i}.png").write_bytes(png_bytes(image))
    out = tmp_path / "pred.csv"
    with pytest.raises(InputError, match=r"non-finite outputs \(NaN/inf\) for .*chest_0.png"):
        predict_files(run_dir, [folder], out, progress=False)
    assert not out.exists()
