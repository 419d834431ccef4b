"""An ensemble run folder (``medlens ensemble``) served on ``/v1/predict``: the same
probabilities and decisions as ``medlens predict ENSEMBLE_DIR``, its members' disagreement as
uncertainty, and no heatmap (with the reason in the answer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from fastapi.testclient import TestClient

from medlens.commands.ensemble import ensemble_runs
from medlens.data.readers import read_image
from medlens.errors import ConfigError
from medlens.inference.ensemble_run import load_predictor
from medlens.serve.app import create_app
from medlens.serve.ensemble_model import NO_HEATMAP

LOCAL = "http://localhost"


@pytest.fixture(scope="module")
def ensemble_run(
    pneumonia_run: Path, trust_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A soft ensemble of ``pneumonia_run`` and its copy that flags every case out of
    distribution: the ensemble (any member flagging) refers every case."""
    members = [pneumonia_run, trust_runs["out_of_distribution"]]
    out = tmp_path_factory.mktemp("ensembles")
    return ensemble_runs(members, "soft", out, name="pair", n_bootstrap=0, documents=False)


@pytest.fixture(scope="module")
def chest(pneumonia_test_images: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chest") / "chest.png"
    PIL.Image.fromarray(pneumonia_test_images[3]).save(path)
    return path


def _upload(path: Path) -> dict:
    return {"file": ("chest.png", path.read_bytes(), "application/octet-stream")}


def test_an_ensemble_answers_as_predict_does_and_refers_a_flagged_case(
    ensemble_run: Path, chest: Path
):
    with TestClient(create_app([ensemble_run]), base_url=LOCAL) as client:
        described = client.get("/v1/models").json()["models"][0]
        response = client.post("/v1/predict", files=_upload(chest))
    assert response.status_code == 200, response.text
    body = response.json()
    predictor = load_predictor(ensemble_run)
    offline = predictor.decisions([predictor.prepare(read_image(chest))])
    np.testing.assert_allclose(body["probabilities"], offline.probs[0], atol=1e-6)
    assert body["decision"] == offline.decision(0, predictor.class_names) == "refer"
    assert body["refer"] is True and body["refer_reason"] == "out_of_distribution"
    assert body["predicted_index"] == int(offline.preds[0])
    assert body["predicted_class"] == predictor.class_names[body["predicted_index"]]
    assert body["ood"] == {
        "score": 1.0,
        "threshold": 0.0,
        "flagged": True,
        "members_flagging": 1,
    }
    assert body["heatmap_png_base64"] is None and body["heatmap_omitted"] == NO_HEATMAP
    assert described["uncertainty"] == ["ensemble"] and described["heatmap"] is False
    assert described["task"] == "classification" and described["route"] == "/v1/predict"
    assert [m["name"] for m in described["ensemble"]["members"]] == ["pneumonia", "pneumonia"]
    assert body["weights_sha256"] == described["weights_sha256"]


def test_an_ensemble_gives_its_members_disagreement_and_refuses_other_sampling(
    ensemble_run: Path, chest: Path
):
    with TestClient(create_app([ensemble_run]), base_url=LOCAL) as client:
        body = client.post(
            "/v1/predict?heatmap=false&uncertainty=ensemble", files=_upload(chest)
        ).json()
        refused = client.post("/v1/predict?uncertainty=tta", files=_upload(chest))
    assert body["uncertainty"]["method"] == "ensemble" and body["uncertainty"]["samples"] == 2
    assert 0 <= body["uncertainty"]["mutual_information"] <= body["uncertainty"]["entropy"]
    assert "heatmap_omitted" not in body  # no heatmap asked for, none to explain away
    assert refused.status_code == 422
    assert "ensemble: it answers uncertainty=ensemble only" in refused.json()["detail"]


def test_an_ensemble_is_served_on_pytorch_only(ensemble_run: Path):
    with pytest.raises(ConfigError, match="ensembles are served with --engine torch"):
        create_app([ensemble_run], engine="onnx")
