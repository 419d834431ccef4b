"""A network with broken weights stops the service at start-up, naming its model.pt; a model
that fails on a request is answered 500 with its own reason, never as an image that does not
fit (422)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from medlens.errors import InputError
from medlens.serve.app import DOES_NOT_FIT, create_app

LOCAL = "http://localhost"


def _nan_last_bias(state: dict) -> None:
    last = [key for key in state if key.endswith("bias")][-1]
    state[last] = torch.full_like(state[last], float("nan"))


@pytest.fixture(scope="module")
def chest_png(pneumonia_test_images: np.ndarray, png_bytes) -> bytes:
    return png_bytes(pneumonia_test_images[0])


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_nan_weights_stop_the_start_naming_the_weights(nan_run: Path, engine: str):
    with pytest.raises(InputError, match="non-finite outputs") as info:
        create_app([nan_run], engine=engine)
    assert Path(info.value.path) == nan_run / "model.pt"  # not a start-up export's file
    assert "\n" not in str(info.value)


def test_a_model_failing_on_a_request_is_a_500_with_its_reason(
    pneumonia_run: Path, chest_png: bytes, png_bytes
):
    with TestClient(
        create_app([pneumonia_run]), base_url=LOCAL, raise_server_exceptions=False
    ) as client:
        served = client.app.state.models["pneumonia"]
        with torch.no_grad():  # the weights break after a healthy start
            state = served.predictor.model.state_dict()
            _nan_last_bias(state)
            served.predictor.model.load_state_dict(state)
        broken = client.post("/v1/predict?heatmap=false", files=_upload(chest_png))
        too_big = client.post(
            "/v1/predict?heatmap=false", files=_upload(png_bytes(np.zeros((40, 40), np.uint8)))
        )
    assert broken.status_code == 500
    detail = broken.json()["detail"]
    assert detail.startswith("the model 'pneumonia' failed on this request, not the image")
    assert "non-finite" in detail and str(pneumonia_run) not in detail
    assert detail != DOES_NOT_FIT
    # an image the model cannot take is still the image's fault
    assert too_big.status_code == 422 and too_big.json()["detail"] == DOES_NOT_FIT


def _upload(data: bytes) -> dict:
    return {"file": ("chest.png", data, "application/octet-stream")}
