"""``POST /v1/detect`` through FastAPI's TestClient, on a tiny detection run trained on real
BCCD blood smears: boxes on the image's own pixels, counts per class, the route of each
task, and the upload checks the other routes have."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pytest
import torch
from fastapi.testclient import TestClient

from medlens.data.boxes.rle import decode_rle
from medlens.data.readers import read_image
from medlens.errors import ConfigError
from medlens.inference.detect import detect_inputs, network_input
from medlens.inference.detection_run import load_detection_run
from medlens.serve.app import create_app
from medlens.serve.auth import TokenConfig

LOCAL = "http://localhost"  # without tokens the service answers loopback Host headers only
FULL = "full-access-token-0123456789"
CELLS_ONLY = "cells-only-token-0123456789"
WIDTH, HEIGHT = 640, 480  # every BCCD smear


@pytest.fixture(scope="module")
def client(cells_run: Path, pneumonia_run: Path):
    with TestClient(create_app([cells_run, pneumonia_run]), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def smear(shared_data: Path) -> Path:
    """A real BCCD test smear, not among the run's training images."""
    source = shared_data / "bccd_blood_cells" / "BCCD"
    image_id = (source / "ImageSets" / "Main" / "test.txt").read_text().split()[-1]
    return source / "JPEGImages" / f"{image_id}.jpg"


def _upload(data: bytes, name: str = "smear.jpg") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def _detect(client: TestClient, data: bytes, query: str = "model=cells&min_score=0") -> dict:
    response = client.post(f"/v1/detect?{query}", files=_upload(data))
    assert response.status_code == 200, response.text
    return response.json()


def _check_boxes_and_counts(body: dict) -> None:
    assert body["image_size"] == {"width": WIDTH, "height": HEIGHT}
    for found in body["detections"]:
        assert 0 <= found["x1"] < found["x2"] <= WIDTH
        assert 0 <= found["y1"] < found["y2"] <= HEIGHT
        assert body["class_names"][found["class_index"]] == found["class"]
        assert 0 <= found["score"] <= 1
    listed = Counter(found["class"] for found in body["detections"])
    assert body["counts"] == {name: listed.get(name, 0) for name in body["class_names"]}
    scores = [found["score"] for found in body["detections"]]
    assert scores == sorted(scores, reverse=True)


def test_models_lists_the_detector_with_its_route_and_thresholds(
    client: TestClient, cells_run: Path
):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    cells = models["cells"]
    assert (cells["task"], cells["route"]) == ("detection", "/v1/detect")
    assert cells["class_names"] == ["Platelets", "RBC", "WBC"]
    assert set(cells["thresholds"]) == set(cells["class_names"])
    assert models["pneumonia"]["route"] == "/v1/predict"
    paths = client.get("/openapi.json").json()["paths"]
    assert "multipart/form-data" in paths["/v1/detect"]["post"]["requestBody"]["content"]


def test_boxes_lie_in_the_image_and_are_what_the_run_finds_locally(
    client: TestClient, cells_run: Path, smear: Path
):
    body = _detect(client, smear.read_bytes())
    assert body["model"] == "cells" and body["engine"] == "torch" and body["min_score"] == 0
    assert len(body["detections"]) > 0
    _check_boxes_and_counts(body)
    run = load_detection_run(cells_run, device="cpu")
    (expected,) = detect_inputs(
        run.model, [network_input(read_image(smear), run.preprocess)], torch.device("cpu")
    )
    order = np.argsort(-expected.scores, kind="stable")
    boxes = [[d["x1"], d["y1"], d["x2"], d["y2"]] for d in body["detections"]]
    np.testing.assert_allclose(boxes, expected.boxes[order], atol=1e-3)
    names = [run.class_names[k] for k in expected.labels[order]]
    assert [d["class"] for d in body["detections"]] == names


def test_without_min_score_the_findings_at_each_class_threshold_are_listed(
    client: TestClient, smear: Path
):
    everything = _detect(client, smear.read_bytes())
    findings = _detect(client, smear.read_bytes(), "model=cells")
    assert findings["min_score"] is None
    _check_boxes_and_counts(findings)
    thresholds = findings["thresholds"]
    assert all(
        d["finding"] and d["score"] >= thresholds[d["class"]] for d in findings["detections"]
    )
    expected = [d for d in everything["detections"] if d["score"] >= thresholds[d["class"]]]
    assert findings["detections"] == expected
    high = _detect(client, smear.read_bytes(), "model=cells&min_score=0.999999")
    assert all(d["score"] >= 0.999999 for d in high["detections"])
    metrics = client.get("/metrics").text  # counted under its own endpoint
    assert 'medlens_requests_total{endpoint="/v1/detect",status="200"}' in metrics


def test_a_dicom_of_the_same_pixels_gives_the_same_boxes(
    client: TestClient, smear: Path, dicom_bytes
):
    pixels = np.asarray(PIL.Image.open(smear).convert("RGB"))
    as_jpeg = _detect(client, smear.read_bytes())
    as_dicom = _detect(client, dicom_bytes(pixels))
    _check_boxes_and_counts(as_dicom)
    assert as_dicom["detections"] == as_jpeg["detections"]


def test_each_task_has_its_own_route(client: TestClient, smear: Path, pneumonia_test_images):
    jpeg = smear.read_bytes()
    for route in ("/v1/predict", "/v1/segment"):
        response = client.post(f"{route}?model=cells", files=_upload(jpeg))
        assert response.status_code == 400
        assert response.json()["detail"] == "'cells' is a detection model; use /v1/detect"
    buffer = io.BytesIO()
    PIL.Image.fromarray(pneumonia_test_images[0]).save(buffer, format="PNG")
    response = client.post("/v1/detect?model=pneumonia", files=_upload(buffer.getvalue()))
    assert response.status_code == 400
    assert response.json()["detail"] == "'pneumonia' is a classification model; use /v1/predict"
    unnamed = client.post("/v1/detect", files=_upload(jpeg))  # two models: name one
    assert unnamed.status_code == 400 and "cells, pneumonia" in unnamed.json()["detail"]


def test_bad_uploads_are_refused_with_one_fixed_sentence(
    client: TestClient, smear: Path, tmp_path: Path
):
    jpeg = smear.read_bytes()
    not_an_image = client.post("/v1/detect?model=cells", files=_upload(b"hello, world" * 40))
    assert not_an_image.status_code == 415
    cut = client.post("/v1/detect?model=cells", files=_upload(jpeg[:300]))
    assert cut.status_code == 422 and "JPEG cannot be read" in cut.json()["detail"]
    grey = io.BytesIO()
    PIL.Image.open(smear).convert("L").save(grey, format="PNG")
    one_channel = client.post("/v1/detect?model=cells", files=_upload(grey.getvalue(), "g.png"))
    assert one_channel.status_code == 422
    assert "cannot be used with this model" in one_channel.json()["detail"]
    volume = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 4), np.float32), np.eye(4)), volume)
    as_volume = client.post("/v1/detect?model=cells", files=_upload(volume.read_bytes()))
    assert as_volume.status_code == 422
    bad_score = client.post("/v1/detect?model=cells&min_score=1.5", files=_upload(jpeg))
    assert bad_score.status_code == 422
    assert bad_score.json()["detail"] == "invalid parameter: min_score"
    no_file = client.post("/v1/detect?model=cells")  # the same answer as the other routes
    assert no_file.status_code == client.post("/v1/predict?model=pneumonia").status_code >= 400
    for response in (not_an_image, cut, one_channel, as_volume, bad_score):
        assert str(tmp_path) not in response.text and "Traceback" not in response.text


def test_size_limit_and_tokens_apply_to_detect(cells_run: Path, pneumonia_run: Path, smear: Path):
    jpeg = smear.read_bytes()
    small = create_app([cells_run], max_upload_mb=len(jpeg) / 2 / 2**20)
    with TestClient(small, base_url=LOCAL) as limited:
        assert limited.post("/v1/detect", files=_upload(jpeg)).status_code == 413
    tokens = TokenConfig.from_mapping({FULL: "*", CELLS_ONLY: ["cells"]})
    with TestClient(create_app([cells_run, pneumonia_run], tokens)) as guarded:
        assert guarded.post("/v1/detect?model=cells", files=_upload(jpeg)).status_code == 401
        cells = {"Authorization": f"Bearer {CELLS_ONLY}"}
        allowed = guarded.post("/v1/detect?model=cells", files=_upload(jpeg), headers=cells)
        assert allowed.status_code == 200
        other = guarded.post("/v1/detect?model=pneumonia", files=_upload(jpeg), headers=cells)
        assert other.status_code == 403


def test_a_detector_is_served_with_the_torch_engine_only(cells_run: Path):
    with pytest.raises(ConfigError, match="--engine torch"):
        create_app([cells_run], engine="onnx")


def test_a_mask_rcnn_run_answers_each_detection_with_its_instance_mask(
    client: TestClient,
    wbc_mask_run: Path,
    wbc_test_image: np.ndarray,
    smear: Path,
    png_bytes,
    tmp_path: Path,
):
    boxes_only = _detect(client, smear.read_bytes())
    assert boxes_only["detections"]
    assert not any({"mask", "mask_area_px"} & set(d) for d in boxes_only["detections"])
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["cells"]["predicts_masks"] is False

    image = tmp_path / "wbc.png"
    image.write_bytes(png_bytes(wbc_test_image))
    with TestClient(create_app([wbc_mask_run]), base_url=LOCAL) as masks_client:
        (described,) = masks_client.get("/v1/models").json()["models"]
        body = _detect(masks_client, image.read_bytes(), "model=wbc")
    assert described["predicts_masks"] is True
    height, width = wbc_test_image.shape[:2]
    assert body["image_size"] == {"width": width, "height": height}
    assert body["detections"], "the tiny mask run finds nothing on this cell: pick another"
    fields = {"class", "class_index", "score", "x1", "y1", "x2", "y2", "finding"}
    assert all(set(d) == fields | {"mask", "mask_area_px"} for d in body["detections"])

    # each mask is the one the run finds locally, on the upload's pixels, inside its box
    run = load_detection_run(wbc_mask_run, device="cpu")
    (expected,) = detect_inputs(
        run.model,
        [network_input(read_image(image), run.preprocess)],
        torch.device("cpu"),
        run.mask_threshold,
    )
    assert expected.masks is not None
    order = np.argsort(-expected.scores, kind="stable")[: len(body["detections"])]
    for found, k in zip(body["detections"], order, strict=True):
        assert found["mask"]["size"] == [height, width]
        assert isinstance(found["mask"]["counts"], str)
        mask = decode_rle(found["mask"], "answer")
        np.testing.assert_array_equal(mask, expected.masks[k])
        assert found["mask_area_px"] == int(mask.sum()) > 0
        rows, columns = np.nonzero(mask)
        assert found["x1"] - 1 <= columns.min() and columns.max() + 1 <= found["x2"] + 1
        assert found["y1"] - 1 <= rows.min() and rows.max() + 1 <= found["y2"] + 1
