"""``/v1/segment?uncertainty=``: the per-case summary ``medlens predict --uncertainty`` writes
to segmentations.csv, in the service's JSON (and a file response's header); a method the
model cannot give is a 422."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
import yaml
from fastapi.testclient import TestClient

from medlens.inference.segment import segment_files
from medlens.serve.app import create_app

LOCAL = "http://localhost"
SUMMARY = ("mean_entropy", "mean_mutual_information", "expected_dice", "uncertainty")


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
    header = dict(part.split("=") for part in as_file.headers["x-uncertainty"].split(";"))
    assert header["method"] == "tta"
    assert float(header["expected_dice"]) == pytest.approx(summary["expected_dice"])


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
