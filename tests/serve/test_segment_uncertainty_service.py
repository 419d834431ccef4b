"""``/v1/segment?uncertainty=``: the per-case summary ``medlens predict --uncertainty`` writes
to segmentations.csv, in the service's JSON (and a file response's header), and in the JSON
the per-voxel maps it writes (16-bit PNG for a PNG mask, float32 NIfTI for a volume); a
method the model cannot give is a 422."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
import yaml
from fastapi.testclient import TestClient

from medlens.data.dicom_series import read_dicom_series
from medlens.inference.segment import segment_files
from medlens.serve.app import create_app

LOCAL = "http://localhost"
SUMMARY = ("mean_entropy", "mean_mutual_information", "expected_dice", "uncertainty")
MAPS = {"entropy": "mean_entropy", "mutual_information": "mean_mutual_information"}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def retina(drive_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real DRIVE test image as a PNG file."""
    path = tmp_path_factory.mktemp("retina") / "retina.png"
    with PIL.Image.open(drive_dir / "test" / "images" / "03_test.tif") as image:
        image.convert("RGB").save(path)
    return path


@pytest.fixture(scope="module")
def dropout_run(drive_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``drive_run`` rebuilt with dropout 0.2 in every block: the same weights (dropout has
    none), so MC dropout has something to switch on."""
    run = Path(shutil.copytree(drive_run, tmp_path_factory.mktemp("dropout") / "vessels"))
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    state["model_config"]["dropout"] = 0.2
    torch.save(state, run / "model.pt")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["dropout"] = 0.2
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _upload(path: Path) -> dict:
    return {"file": ("retina.png", path.read_bytes(), "application/octet-stream")}


def _offline(run: Path, image: Path, method: str, out: Path) -> pd.Series:
    """The summary row ``medlens predict --uncertainty`` writes for ``image``."""
    segment_files(run, [image], out, progress=False, uncertainty=method)
    return pd.read_csv(out / "segmentations.csv").iloc[0]


def test_tta_gives_the_summary_predict_writes(drive_run: Path, retina: Path, tmp_path: Path):
    with TestClient(create_app([drive_run]), base_url=LOCAL) as client:
        described = client.get("/v1/models").json()["models"][0]
        assert described["uncertainty"] == ["tta"]  # no dropout: no MC dropout
        body = client.post("/v1/segment?format=json&uncertainty=tta", files=_upload(retina))
        plain = client.post("/v1/segment?format=json", files=_upload(retina)).json()
        as_file = client.post("/v1/segment?format=png&uncertainty=tta", files=_upload(retina))
    assert body.status_code == 200, body.text
    summary = body.json()["uncertainty"]
    row = _offline(drive_run, retina, "tta", tmp_path / "masks")
    assert summary["method"] == "tta"
    for key in SUMMARY:
        assert summary[key] == pytest.approx(float(row[key]), rel=1e-4, abs=1e-6), key
    assert summary["uncertainty"] == pytest.approx(1 - summary["expected_dice"])
    assert 0 <= summary["mean_mutual_information"] <= summary["mean_entropy"] <= np.log(2)
    assert body.json()["class_voxels"] == plain["class_voxels"]  # the mask itself unchanged
    assert plain["uncertainty"] is None
    assert plain["uncertainty_maps"] is None
    header = dict(part.split("=") for part in as_file.headers["x-uncertainty"].split(";"))
    assert header["method"] == "tta"
    assert float(header["expected_dice"]) == pytest.approx(summary["expected_dice"])


def test_the_json_carries_the_maps_predict_writes(drive_run: Path, retina: Path, tmp_path: Path):
    with TestClient(create_app([drive_run]), base_url=LOCAL) as client:
        response = client.post("/v1/segment?format=json&uncertainty=tta", files=_upload(retina))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["uncertainty_maps"]) == set(MAPS)
    row = _offline(drive_run, retina, "tta", tmp_path / "masks")
    with PIL.Image.open(retina) as image:
        width, height = image.size
    for name, mean_column in MAPS.items():
        entry = body["uncertainty_maps"][name]
        assert entry["filename"] == f"{name}.png" and entry["media_type"] == "image/png"
        assert entry["units"] == "nats"
        assert entry["max_nats"] == pytest.approx(np.log(2))  # log K, K = 2 classes
        with PIL.Image.open(io.BytesIO(base64.b64decode(entry["base64"]))) as png:
            served = np.asarray(png)
        assert served.dtype == np.uint16 and served.shape == (height, width)
        with PIL.Image.open(row[f"{name}_map"]) as png:  # what medlens predict writes
            np.testing.assert_array_equal(served, np.asarray(png))
        nats = served.astype(np.float64) / 65535 * entry["max_nats"]
        step = entry["max_nats"] / 65535  # rounding to 16 bits moves the mean by half of it
        assert nats.mean() == pytest.approx(body["uncertainty"][mean_column], abs=step)
    assert body["uncertainty_maps"]["entropy"]["base64"] != body["mask_base64"]


def test_a_volume_gets_its_maps_as_nifti(ct_run: Path, ct_dir: Path, tmp_path: Path):
    series = read_dicom_series(ct_dir)
    volume = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(series.array[0].astype(np.int16), LPS_TO_RAS @ series.affine), volume)
    with TestClient(create_app([ct_run]), base_url=LOCAL) as client:
        response = client.post(
            "/v1/segment?format=json&uncertainty=tta",
            files={"file": ("scan.nii.gz", volume.read_bytes())},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mask_format"] == "nifti"

    def decoded(text: str, name: str) -> nib.Nifti1Image:
        (tmp_path / name).write_bytes(base64.b64decode(text))
        return nib.load(tmp_path / name)

    mask = decoded(body["mask_base64"], "mask.nii.gz")
    assert mask.shape == (3, 512, 512)
    segment_files(ct_run, [volume], tmp_path / "cli", progress=False, uncertainty="tta")
    row = pd.read_csv(tmp_path / "cli" / "segmentations.csv").iloc[0]
    for name, mean_column in MAPS.items():
        entry = body["uncertainty_maps"][name]
        assert entry["filename"] == f"{name}.nii.gz"
        assert entry["media_type"] == "application/gzip"
        assert entry["units"] == "nats" and entry["max_nats"] is None  # the values are nats
        served = decoded(entry["base64"], entry["filename"])
        values = np.asarray(served.dataobj)
        assert values.dtype == np.float32 and values.shape == mask.shape
        np.testing.assert_allclose(served.affine, mask.affine, atol=1e-4)
        assert values.min() >= 0 and values.max() <= np.log(2) + 1e-6
        assert float(values.mean()) == pytest.approx(body["uncertainty"][mean_column], rel=1e-4)
        written = np.asarray(nib.load(row[f"{name}_map"]).dataobj)  # medlens predict's map
        np.testing.assert_allclose(values, written, rtol=1e-5, atol=1e-6)


def test_a_method_the_segmenter_lacks_is_a_422(drive_run: Path, retina: Path):
    with TestClient(create_app([drive_run]), base_url=LOCAL) as client:
        refused = client.post("/v1/segment?uncertainty=mc_dropout", files=_upload(retina))
        unknown = client.post("/v1/segment?uncertainty=ensemble", files=_upload(retina))
    assert refused.status_code == 422
    assert refused.json()["detail"] == "this model has no dropout layers; ask for uncertainty=tta"
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "uncertainty must be tta for this model"


def test_mc_dropout_on_a_segmenter_with_dropout(dropout_run: Path, retina: Path, tmp_path: Path):
    with TestClient(create_app([dropout_run]), base_url=LOCAL) as client:
        served = client.app.state.models["vessels"]
        assert served.explainer is not served.run.model  # dropout switched on in a copy only
        described = client.get("/v1/models").json()["models"][0]
        assert described["uncertainty"] == ["tta", "mc_dropout"]
        first = client.post("/v1/segment?format=json&uncertainty=mc_dropout", files=_upload(retina))
        again = client.post("/v1/segment?format=json", files=_upload(retina)).json()
    assert first.status_code == 200, first.text
    summary = first.json()["uncertainty"]
    row = _offline(dropout_run, retina, "mc_dropout", tmp_path / "masks")
    assert summary["method"] == "mc_dropout"
    for key in SUMMARY:
        assert summary[key] == pytest.approx(float(row[key]), rel=1e-4, abs=1e-6), key
    assert summary["mean_mutual_information"] > 0  # the passes disagree somewhere
    # the shared network stays in eval mode: the next plain mask is the ordinary one
    assert again["class_voxels"] == first.json()["class_voxels"]
