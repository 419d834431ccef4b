"""The inference service through FastAPI's TestClient: every endpoint and error code."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import PIL.Image
import pydicom
import pytest
import yaml
from fastapi.testclient import TestClient

from medlens.data import readers
from medlens.data.masks import read_mask
from medlens.data.readers import read_image
from medlens.errors import ConfigError
from medlens.inference.loaded_run import load_run, predict_arrays, prepare_input
from medlens.inference.segment import segment_files
from medlens.serve.access_log import JsonFormatter
from medlens.serve.app import create_app, is_loopback, serve
from medlens.serve.auth import TokenConfig, load_token_config

PATIENT = "Doe^Jane"
FULL = "full-access-token-0123456789"
VESSELS_ONLY = "vessels-only-token-0123456789"
LOCAL = "http://localhost"  # without tokens the service answers loopback Host headers only


@pytest.fixture(scope="module")
def client(pneumonia_run: Path, drive_run: Path):
    with TestClient(create_app([pneumonia_run, drive_run]), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def auth_client(pneumonia_run: Path, drive_run: Path):
    tokens = TokenConfig.from_mapping({FULL: "*", VESSELS_ONLY: ["vessels"]})
    with TestClient(create_app([pneumonia_run, drive_run], tokens)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def chest_png(pneumonia_test_images: np.ndarray, png_bytes) -> bytes:
    return png_bytes(pneumonia_test_images[0])


@pytest.fixture(scope="module")
def retina_png(drive_dir: Path, png_bytes) -> bytes:
    with PIL.Image.open(drive_dir / "test" / "images" / "02_test.tif") as image:
        return png_bytes(np.asarray(image.convert("RGB")))


def _upload(data: bytes, name: str = f"{PATIENT}.png") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def _expected_probabilities(run_dir: Path, path: Path) -> np.ndarray:
    run = load_run(run_dir, device="cpu")
    return predict_arrays(run, [prepare_input(run, read_image(path))])[0]


def test_health_readiness_openapi_and_the_page(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "models": 2, "auth": False}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/segment", "/v1/models", "/healthz", "/readyz"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/predict"]["post"]["requestBody"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert "https://" not in page.text  # nothing from a CDN
    assert client.get("/static/app.js").status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_models_lists_each_run_with_its_weights_digest(client: TestClient, pneumonia_run: Path):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"pneumonia", "vessels"}
    digest = hashlib.sha256((pneumonia_run / "model.pt").read_bytes()).hexdigest()
    assert models["pneumonia"]["weights_sha256"] == digest
    assert models["pneumonia"]["task"] == "classification"
    assert models["vessels"]["task"] == "segmentation"


def test_predict_a_png_gives_the_runs_probabilities_decision_and_heatmap(
    client: TestClient, pneumonia_run: Path, chest_png: bytes, tmp_path: Path
):
    response = client.post("/v1/predict?model=pneumonia", files=_upload(chest_png))
    assert response.status_code == 200, response.text
    body = response.json()
    (tmp_path / "chest.png").write_bytes(chest_png)
    expected = _expected_probabilities(pneumonia_run, tmp_path / "chest.png")
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    labels = json.loads((pneumonia_run / "labels.json").read_text())
    assert body["threshold"] == pytest.approx(labels["threshold"])
    decided = labels["class_names"][int(expected[1] >= labels["threshold"])]
    assert body["predicted_class"] == decided and body["class_names"] == labels["class_names"]
    assert body["decision"] == ("refer" if body["refer"] else decided)
    heatmap = PIL.Image.open(io.BytesIO(base64.b64decode(body["heatmap_png_base64"])))
    assert heatmap.format == "PNG" and heatmap.width > 100
    assert response.headers["x-request-id"]


def test_a_dicom_file_and_a_zipped_series_give_the_same_result_as_the_png(
    client: TestClient, pneumonia_test_images: np.ndarray, chest_png: bytes, dicom_bytes, zip_bytes
):
    as_png = client.post(
        "/v1/predict?model=pneumonia&heatmap=false", files=_upload(chest_png)
    ).json()
    dicom = dicom_bytes(pneumonia_test_images[0], PATIENT)
    as_dicom = client.post(
        "/v1/predict?model=pneumonia&heatmap=false", files=_upload(dicom, "scan.dcm")
    ).json()
    as_zip = client.post(
        "/v1/predict?model=pneumonia&heatmap=false",
        files=_upload(zip_bytes({"series/IM0001": dicom}), "series.zip"),
    ).json()
    np.testing.assert_allclose(as_dicom["probabilities"], as_png["probabilities"], atol=1e-6)
    np.testing.assert_allclose(as_zip["probabilities"], as_png["probabilities"], atol=1e-6)
    assert as_png["heatmap_png_base64"] is None


def test_tokens_401_without_or_with_a_wrong_token_and_403_without_access(
    auth_client: TestClient, chest_png: bytes
):
    missing = auth_client.post("/v1/predict?model=pneumonia", files=_upload(chest_png))
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = auth_client.post(
        "/v1/predict?model=pneumonia",
        files=_upload(chest_png),
        headers={"Authorization": "Bearer not-a-real-token-000000"},
    )
    assert wrong.status_code == 401
    forbidden = auth_client.post(
        "/v1/predict?model=pneumonia",
        files=_upload(chest_png),
        headers={"Authorization": f"Bearer {VESSELS_ONLY}"},
    )
    assert forbidden.status_code == 403
    allowed = auth_client.post(
        "/v1/predict?model=pneumonia&heatmap=false",
        files=_upload(chest_png),
        headers={"Authorization": f"Bearer {FULL}"},
    )
    assert allowed.status_code == 200
    assert auth_client.get("/v1/models").status_code == 401
    listed = auth_client.get("/v1/models", headers={"Authorization": f"Bearer {VESSELS_ONLY}"})
    assert [m["name"] for m in listed.json()["models"]] == ["vessels"]
    assert auth_client.get("/healthz").status_code == 200  # probes need no token


def test_tokens_come_from_a_yaml_file_or_the_environment(tmp_path: Path):
    file = tmp_path / "tokens.yaml"
    file.write_text(yaml.safe_dump({FULL: "*", VESSELS_ONLY: ["vessels"]}))
    from_file = load_token_config(file, environ={})
    assert from_file is not None and from_file.grant_for(VESSELS_ONLY).allows("vessels")
    assert not from_file.grant_for(VESSELS_ONLY).allows("pneumonia")
    from_env = load_token_config(None, environ={"MEDLENS_TOKENS": json.dumps({FULL: "*"})})
    assert from_env is not None and from_env.grant_for(FULL).allows("anything")
    assert from_env.grant_for("x" * 20) is None
    assert load_token_config(None, environ={}) is None
    with pytest.raises(ConfigError, match="at least 16") as short:
        load_token_config(None, environ={"MEDLENS_TOKENS": '{"abc": "*"}'})
    assert "abc" not in str(short.value)  # a token never appears in a message


def test_413_by_content_length_by_counting_a_chunked_body_and_for_a_zip_bomb(
    pneumonia_run: Path, retina_png: bytes, zip_bytes
):
    assert len(retina_png) > 100_000
    with TestClient(create_app([pneumonia_run], max_upload_mb=0.05), base_url=LOCAL) as small:
        declared = small.post("/v1/predict", files=_upload(retina_png))
        assert declared.status_code == 413 and "0.05 MB" in declared.json()["detail"]

        boundary = "medlensboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        chunks = [head, retina_png, f"\r\n--{boundary}--\r\n".encode()]
        chunked = small.post(
            "/v1/predict",
            content=iter(chunks),  # a generator: sent chunked, without Content-Length
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 413

        # a zip bomb: 1 MiB of zeros deflates to about 1 kB, over 8 x 0.05 MB unpacked
        bomb = zip_bytes({"IM1": bytes(2**20)})
        assert len(bomb) < 10_000
        unpacked = small.post("/v1/predict", files=_upload(bomb, "s.zip"))
        assert unpacked.status_code == 413 and "unpacks" in unpacked.json()["detail"]


def test_415_for_types_the_service_does_not_take(
    client: TestClient, drive_dir: Path, chest_png: bytes
):
    text = client.post("/v1/predict?model=pneumonia", files=_upload(b"name,age\nx,1\n", "a.png"))
    assert text.status_code == 415
    assert text.json()["detail"].startswith("unsupported file type; send PNG, JPEG, a 2D TIFF,")
    gif = (drive_dir / "test" / "mask" / "01_test_mask.gif").read_bytes()
    assert client.post("/v1/predict?model=pneumonia", files=_upload(gif)).status_code == 415
    raw = client.post(
        "/v1/predict?model=pneumonia", content=chest_png, headers={"Content-Type": "image/png"}
    )
    assert raw.status_code == 415 and "multipart" in raw.json()["detail"]


def test_422_for_unreadable_content_with_a_one_line_reason(
    client: TestClient, chest_png: bytes, dicom_bytes, pneumonia_test_images: np.ndarray, png_bytes
):
    cases = {
        "truncated PNG": chest_png[: len(chest_png) // 2],
        "corrupt DICOM": dicom_bytes(pneumonia_test_images[0])[:300],
        "wrong size": png_bytes(np.zeros((64, 64), dtype=np.uint8)),
        "not a zip inside": b"PK\x03\x04" + b"\x00" * 200,
    }
    for what, data in cases.items():
        response = client.post("/v1/predict?model=pneumonia", files=_upload(data))
        assert response.status_code == 422, what
        detail = response.json()["detail"]
        assert "\n" not in detail and "Traceback" not in detail, what
        assert "/tmp" not in detail and "medlens-serve" not in detail, what  # no server path
    wrong_size = client.post("/v1/predict?model=pneumonia", files=_upload(cases["wrong size"]))
    # a fixed sentence (issue 13: no values echoed from the upload, not even its shape)
    assert "input_shape" in wrong_size.json()["detail"]
    assert "64" not in wrong_size.json()["detail"]
    no_file = client.post("/v1/predict?model=pneumonia", files={"other": ("a", b"1")})
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]


def test_504_when_a_request_takes_longer_than_the_timeout(pneumonia_run: Path, chest_png: bytes):
    with TestClient(create_app([pneumonia_run], timeout_s=1e-6), base_url=LOCAL) as hurried:
        response = hurried.post("/v1/predict", files=_upload(chest_png))
    assert response.status_code == 504 and "limit" in response.json()["detail"]


def test_zip_slip_is_refused_and_nothing_lands_outside(
    client: TestClient, zip_bytes, dicom_bytes, pneumonia_test_images: np.ndarray
):
    workspace: Path = client.app.state.workspace
    dicom = dicom_bytes(pneumonia_test_images[0])
    for evil in ("../../escaped.dcm", "/tmp/medlens_zip_slip_escaped.dcm", "a/../../escaped.dcm"):
        response = client.post(
            "/v1/predict?model=pneumonia", files=_upload(zip_bytes({evil: dicom}), "s.zip")
        )
        assert response.status_code == 422 and "refused" in response.json()["detail"]
    assert not Path("/tmp/medlens_zip_slip_escaped.dcm").exists()
    assert not list(workspace.parent.glob("**/escaped.dcm"))
    assert sorted(p.name for p in workspace.iterdir()) == ["onnx"]  # every request cleaned up


def test_client_file_names_never_touch_the_file_system_and_logs_hold_no_patient_data(
    client: TestClient,
    dicom_bytes,
    pneumonia_test_images: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    seen: list[Path] = []
    real_read = readers.read_image

    def spy(path, **options):  # options: the service's voxel budget (max_voxels)
        seen.append(Path(path))
        return real_read(path, **options)

    monkeypatch.setattr(readers, "read_image", spy)  # read_upload imports it at call time
    dicom = dicom_bytes(pneumonia_test_images[1], PATIENT)
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/v1/predict?model=pneumonia&heatmap=false", files=_upload(dicom, f"{PATIENT}.dcm")
        )
    assert response.status_code == 200
    assert [p.name for p in seen] == ["image.dcm"]
    assert client.app.state.workspace in seen[0].parents
    access = [r for r in caplog.records if r.name == "medlens.serve.access"]
    assert len(access) == 1
    fields = access[0].fields
    assert set(fields) == {"request_id", "method", "endpoint", "model", "status", "duration_ms"}
    assert (fields["endpoint"], fields["model"], fields["status"]) == (
        "/v1/predict",
        "pneumonia",
        200,
    )
    assert fields["request_id"] == response.headers["x-request-id"]
    line = json.loads(JsonFormatter().format(access[0]))
    assert line["status"] == 200 and line["duration_ms"] > 0
    everything = caplog.text + " ".join(
        json.dumps(getattr(r, "fields", {})) for r in caplog.records
    )
    for secret in ("Doe", "Jane", "MEDLENS-TEST-0001", ".dcm"):
        assert secret not in everything


def test_segment_returns_the_mask_the_cli_writes(
    client: TestClient, drive_run: Path, retina_png: bytes, tmp_path: Path
):
    response = client.post("/v1/segment?model=vessels&format=png", files=_upload(retina_png))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    (tmp_path / "retina.png").write_bytes(retina_png)
    _assert_mask_is_predicts(response, drive_run, tmp_path / "retina.png", tmp_path)

    nifti = client.post("/v1/segment?model=vessels&format=nifti", files=_upload(retina_png))
    (tmp_path / "mask.nii.gz").write_bytes(nifti.content)
    assert nib.load(tmp_path / "mask.nii.gz").shape[:2] in {(584, 565), (565, 584)}


def _assert_mask_is_predicts(
    response: httpx.Response, run: Path, source: Path, tmp_path: Path
) -> None:
    """The served PNG mask of a DRIVE image is the one ``segment_files`` writes for
    ``source``, and its vessel count is in ``x-class-voxels``."""
    (tmp_path / "served.png").write_bytes(response.content)
    segment_files(run, [source], tmp_path / "cli", mask_format="png")
    served = read_mask(tmp_path / "served.png").array
    expected = read_mask(tmp_path / "cli" / f"{source.stem}.png").array
    assert served.shape == (1, 584, 565)
    np.testing.assert_array_equal(served, expected)
    assert response.headers["x-class-voxels"] == f"vessel={int(expected.sum())}"


def test_a_drive_tiff_is_read_as_predict_reads_it(
    client: TestClient, drive_run: Path, drive_dir: Path, retina_png: bytes, tmp_path: Path
):
    # DRIVE's own file: an RGB, LZW-compressed TIFF (PROVENANCE.md: test/images/NN_test.tif)
    source = drive_dir / "test" / "images" / "02_test.tif"
    tiff = source.read_bytes()
    assert tiff[:4] == b"II*\x00"
    response = client.post("/v1/segment?model=vessels&format=png", files=_upload(tiff, "a.tif"))
    assert response.status_code == 200, response.text
    _assert_mask_is_predicts(response, drive_run, source, tmp_path)
    # the same pixels as the PNG made from it give the same mask; the name is not looked at
    as_png = client.post("/v1/segment?model=vessels&format=png", files=_upload(retina_png))
    assert as_png.content == response.content
    preview = PIL.Image.open(io.BytesIO(client.post("/v1/preview", files=_upload(tiff)).content))
    assert preview.size == (565, 584) and preview.mode == "RGB"


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL, on the cut-short TIFF
def test_a_tiff_stack_or_a_damaged_tiff_is_a_422_with_a_fixed_sentence(
    client: TestClient, drive_dir: Path, tmp_path: Path
):
    import tifffile

    from medlens.serve.inputs import TIFF_STACK, UNREADABLE

    images = drive_dir / "test" / "images"
    pages = []
    for name in ("01_test.tif", "02_test.tif"):
        with PIL.Image.open(images / name) as image:
            pages.append(np.asarray(image)[..., 1])  # the green channel of two fundus photos
    tifffile.imwrite(tmp_path / "stack.tif", np.stack(pages))
    stack = client.post(
        "/v1/segment?model=vessels", files=_upload((tmp_path / "stack.tif").read_bytes())
    )
    assert stack.status_code == 422 and stack.json()["detail"] == TIFF_STACK
    tiff = (images / "01_test.tif").read_bytes()
    cut = client.post("/v1/segment?model=vessels", files=_upload(tiff[: len(tiff) // 2]))
    assert cut.status_code == 422 and cut.json()["detail"] == UNREADABLE["tiff"]


def test_wrong_endpoint_model_or_format_is_a_client_error(
    client: TestClient, chest_png: bytes, retina_png: bytes
):
    seg_on_png = client.post(
        "/v1/segment?model=vessels&format=dicom-seg", files=_upload(retina_png)
    )
    assert seg_on_png.status_code == 422 and "series" in seg_on_png.json()["detail"]
    assert client.post("/v1/segment?model=pneumonia", files=_upload(chest_png)).status_code == 400
    assert client.post("/v1/predict?model=vessels", files=_upload(retina_png)).status_code == 400
    assert client.post("/v1/predict?model=nope", files=_upload(chest_png)).status_code == 404
    assert client.post("/v1/predict", files=_upload(chest_png)).status_code == 400  # two models
    bad_format = client.post("/v1/segment?model=vessels&format=jpeg", files=_upload(retina_png))
    assert bad_format.status_code == 422


def test_preview_is_the_image_on_its_own_grid(client: TestClient, retina_png: bytes):
    response = client.post("/v1/preview", files=_upload(retina_png))
    image = PIL.Image.open(io.BytesIO(response.content))
    assert response.status_code == 200 and image.size == (565, 584) and image.mode == "RGB"


def test_the_onnx_engine_exports_at_startup_and_agrees_with_torch(
    pneumonia_run: Path, chest_png: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    run_copy = tmp_path / "pneumonia"
    shutil.copytree(pneumonia_run, run_copy, ignore=shutil.ignore_patterns("model.onnx"))
    with caplog.at_level(logging.INFO, logger="medlens.serve"):
        app = create_app([run_copy], engine="onnx")
    assert "has no model.onnx" in caplog.text
    assert not (run_copy / "model.onnx").exists()  # the run folder is not written to
    with (
        TestClient(app, base_url=LOCAL) as onnx_client,
        TestClient(create_app([run_copy]), base_url=LOCAL) as torch_client,
    ):
        via_onnx = onnx_client.post("/v1/predict", files=_upload(chest_png)).json()
        via_torch = torch_client.post("/v1/predict", files=_upload(chest_png)).json()
    assert via_onnx["engine"] == "onnx" and via_torch["engine"] == "torch"
    np.testing.assert_allclose(via_onnx["probabilities"], via_torch["probabilities"], atol=1e-5)
    assert via_onnx["decision"] == via_torch["decision"]
    assert via_onnx["heatmap_png_base64"]  # Grad-CAM still runs on PyTorch


def test_without_tokens_serve_refuses_a_non_loopback_address(
    pneumonia_run: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MEDLENS_TOKENS", raising=False)
    with pytest.raises(ConfigError, match="loopback"):
        serve([pneumonia_run], host="0.0.0.0")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_a_zipped_series_gets_a_dicom_seg_that_references_it(
    client: TestClient, drive_dir: Path, dicom_bytes, zip_bytes, tmp_path: Path
):
    with PIL.Image.open(drive_dir / "test" / "images" / "03_test.tif") as image:
        rgb = np.asarray(image.convert("RGB"))
    dicom = dicom_bytes(rgb, PATIENT)
    archive = zip_bytes({"study/series/IM1": dicom, "__MACOSX/study/._IM1": b"junk"})
    response = client.post("/v1/segment?model=vessels", files=_upload(archive, "s.zip"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    (tmp_path / "seg.dcm").write_bytes(response.content)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    source = pydicom.dcmread(io.BytesIO(dicom))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.SegmentSequence[0].SegmentLabel == "vessel"
    png = client.post("/v1/segment?model=vessels&format=png", files=_upload(archive, "s.zip"))
    (tmp_path / "mask.png").write_bytes(png.content)
    labels = read_mask(tmp_path / "mask.png").array[0]
    frames = seg.pixel_array.reshape(-1, *labels.shape)  # one frame: the vessel segment
    np.testing.assert_array_equal(frames[0] > 0, labels > 0)
    # a series without the Type 2 attributes a SEG copies is the client's problem, not a 500
    bare = pydicom.dcmread(io.BytesIO(dicom))
    del bare.PatientBirthDate
    buffer = io.BytesIO()
    bare.save_as(buffer)
    incomplete = zip_bytes({"IM1": buffer.getvalue()})
    refused = client.post("/v1/segment?model=vessels", files=_upload(incomplete, "s.zip"))
    assert refused.status_code == 422 and "PatientBirthDate" in refused.json()["detail"]
