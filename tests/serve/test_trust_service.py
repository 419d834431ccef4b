"""The service's answer says whether to trust it: calibration, the refer band, the
out-of-distribution flag and, on request, sampled uncertainty."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from fastapi.testclient import TestClient

from medlens.data.readers import read_image
from medlens.inference.decide import RunPredictor
from medlens.inference.loaded_run import load_run
from medlens.serve.app import create_app

LOCAL = "http://localhost"


@pytest.fixture(scope="module")
def chest_png(pneumonia_test_images: np.ndarray, png_bytes) -> bytes:
    return png_bytes(pneumonia_test_images[0])


def _upload(data: bytes) -> dict:
    return {"file": ("chest.png", data, "application/octet-stream")}


def test_the_answer_carries_calibration_band_and_ood(pneumonia_run: Path, chest_png: bytes):
    with TestClient(create_app([pneumonia_run]), base_url=LOCAL) as client:
        described = client.get("/v1/models").json()["models"][0]
        assert described["calibration"] == "temperature"
        assert described["uncertainty"] == ["tta"]  # no dropout: no MC dropout
        body = client.post("/v1/predict?heatmap=false", files=_upload(chest_png)).json()
    assert body["calibration"] == "temperature"
    assert body["refer"] in (True, False) and body["refer_band"]["rule"] == "coverage"
    assert body["ood"]["flagged"] == (body["ood"]["score"] > body["ood"]["threshold"])
    assert body["uncertainty"] is None
    assert body["predicted_class"] == body["class_names"][body["predicted_index"]]
    assert body["predicted_class"] in ("normal", "pneumonia")
    assert body["decision"] == ("refer" if body["refer"] else body["predicted_class"])


@pytest.mark.parametrize("reason", ["uncertain", "out_of_distribution"])
def test_a_referred_case_says_so(reason: str, trust_runs: dict[str, Path], chest_png: bytes):
    with TestClient(create_app([trust_runs[reason]]), base_url=LOCAL) as client:
        body = client.post("/v1/predict", files=_upload(chest_png)).json()
    assert body["refer"] is True
    assert body["refer_reason"] in {reason, "out_of_distribution"}
    if reason == "out_of_distribution":
        assert body["refer_reason"] == reason and body["ood"]["flagged"] is True
    # the decision is "refer", as in predict's CSV; the model's class is kept beside it
    assert body["decision"] == "refer"
    assert body["predicted_class"] == body["class_names"][body["predicted_index"]]
    expected = _offline_decisions(trust_runs[reason], chest_png)
    assert body["predicted_index"] == int(expected.preds[0])
    assert expected.row(0, body["class_names"])["decision"] == "refer"
    assert body["heatmap_png_base64"]  # the heatmap still explains the model's class


def _offline_decisions(run_dir: Path, png: bytes):
    """What ``medlens predict``'s code decides for the PNG ``png``."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chest.png"
        path.write_bytes(png)
        predictor = RunPredictor(load_run(run_dir))
        return predictor.decisions([predictor.prepare(read_image(path))])


def test_uncertainty_on_request_and_a_method_the_model_lacks_is_a_422(
    pneumonia_run: Path, chest_png: bytes
):
    with TestClient(create_app([pneumonia_run]), base_url=LOCAL) as client:
        body = client.post(
            "/v1/predict?heatmap=false&uncertainty=tta", files=_upload(chest_png)
        ).json()
        assert body["uncertainty"]["method"] == "tta" and body["uncertainty"]["samples"] == 10
        assert 0 <= body["uncertainty"]["mutual_information"] <= body["uncertainty"]["entropy"]
        refused = client.post("/v1/predict?uncertainty=mc_dropout", files=_upload(chest_png))
        assert refused.status_code == 422
        assert (
            refused.json()["detail"] == "this model has no dropout layers; ask for uncertainty=tta"
        )
        unknown = client.post("/v1/predict?uncertainty=ensemble", files=_upload(chest_png))
        assert unknown.status_code == 422
        assert unknown.json()["detail"] == "uncertainty must be tta for this model"


def test_one_forward_pass_gives_the_probabilities_and_the_ood_score_predict_gives(
    pneumonia_run: Path, chest_png: bytes, tmp_path: Path
):
    with TestClient(create_app([pneumonia_run]), base_url=LOCAL) as client:
        served = client.app.state.models["pneumonia"]
        assert served.run.trust.ood is not None
        first_layer = next(m for m in served.predictor.model.modules() if not list(m.children()))
        calls: list[int] = []
        handle = first_layer.register_forward_hook(lambda *_: calls.append(1))
        body = client.post("/v1/predict?heatmap=false", files=_upload(chest_png)).json()
        handle.remove()
    assert len(calls) == 1  # one pass of the network, not one for the probabilities and one more
    path = tmp_path / "chest.png"
    PIL.Image.open(io.BytesIO(chest_png)).save(path)
    predictor = RunPredictor(served.run)
    offline = predictor.decisions([predictor.prepare(read_image(path))])
    assert body["ood"]["score"] == pytest.approx(float(offline.ood_scores[0]), rel=1e-5)
    assert body["probabilities"] == pytest.approx(offline.probs[0].tolist(), rel=1e-5)


def test_a_three_class_answer_refers_below_the_decided_class_cut(
    wbc_types_run: Path, wbc_cells: Path, png_bytes
):
    """Each answer of a three-class run carries the run's cut per class, and refers exactly
    when the decided class's probability is below its cut (or the image is flagged)."""
    cuts = _recorded_cuts(wbc_types_run)
    reasons = []
    with TestClient(create_app([wbc_types_run]), base_url=LOCAL) as client:
        for name in (f"{i:03d}.bmp" for i in range(1, 13)):
            data = png_bytes(np.asarray(PIL.Image.open(wbc_cells / name).convert("RGB")))
            body = client.post("/v1/predict?heatmap=false", files=_upload(data)).json()
            k = body["predicted_index"]
            assert body["predicted_class"] == body["class_names"][k]
            assert body["decision"] == ("refer" if body["refer"] else body["predicted_class"])
            assert body["refer_band"]["class_min_confidence"] == pytest.approx(cuts)
            assert body["refer_band"]["low"] is None and "targets" not in body["refer_band"]
            in_band = body["probabilities"][k] < cuts[k]
            flagged = body["ood"]["flagged"]
            assert body["refer"] == (in_band or flagged)
            reasons.append(body["refer_reason"])
            assert reasons[-1] == (
                "out_of_distribution" if flagged else "uncertain" if in_band else None
            )
    assert "uncertain" in reasons and None in reasons  # both sides of a cut were served


def _recorded_cuts(run: Path) -> list[float]:
    """The run's per-class cuts, as training recorded them."""
    cuts = load_run(run).trust.band.class_min_confidence
    assert cuts is not None
    return list(cuts)
