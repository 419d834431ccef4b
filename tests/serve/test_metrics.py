"""``GET /metrics``: Prometheus text with the requests the service answered, by status, the
latency histogram, and each model's load time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from medlens.serve.app import create_app
from medlens.serve.auth import TokenConfig

LOCAL = "http://localhost"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_the_requests_served_by_status(
    pneumonia_run: Path, pneumonia_test_images: np.ndarray, png_bytes
) -> None:
    with TestClient(create_app([pneumonia_run]), base_url=LOCAL) as client:
        png = png_bytes(pneumonia_test_images[0])
        for _ in range(3):
            answer = client.post("/v1/predict?heatmap=false", files={"file": ("a.png", png)})
            assert answer.status_code == 200 and answer.json()["seconds"] > 0
        for _ in range(2):  # a wrong type: 415
            client.post("/v1/predict", files={"file": ("a.csv", b"a,b\n1,2\n")})
        client.get("/no/such/path")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    ok = ("medlens_requests_total", (("endpoint", "/v1/predict"), ("status", "200")))
    bad = ("medlens_requests_total", (("endpoint", "/v1/predict"), ("status", "415")))
    assert samples[ok] == 3 and samples[bad] == 2
    assert samples[("medlens_requests_total", (("endpoint", "other"), ("status", "404")))] == 1
    count = ("medlens_request_duration_seconds_count", (("endpoint", "/v1/predict"),))
    assert samples[count] == 5
    load = ("medlens_model_load_seconds", (("engine", "torch"), ("model", "pneumonia")))
    assert samples[load] > 0


def test_metrics_need_a_token_when_the_service_has_tokens(pneumonia_run: Path) -> None:
    tokens = TokenConfig.from_mapping({"a-token-of-some-length-000": "*"})
    with TestClient(create_app([pneumonia_run], tokens)) as client:
        assert client.get("/metrics").status_code == 401
        allowed = client.get(
            "/metrics", headers={"Authorization": "Bearer a-token-of-some-length-000"}
        )
        assert allowed.status_code == 200
        assert "medlens_model_load_seconds" in allowed.text


@pytest.mark.parametrize("path", ["/v1/../../etc/passwd", "/x" * 50])
def test_unknown_paths_share_one_label(pneumonia_run: Path, path: str) -> None:
    with TestClient(create_app([pneumonia_run]), base_url=LOCAL) as client:
        client.get(path)
        text = client.get("/metrics").text
    assert path not in text
