"""Issue 13, the service: decompression bombs, bounded workers, fixed error sentences, the zip
entry limit, the trusted-host check, ASCII headers, and model lists filtered by token.

Every crafted input is built here.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medlens.data.budget import DEFAULT_MAX_VOXELS
from medlens.errors import ConfigError
from medlens.serve import analysis
from medlens.serve.app import create_app
from medlens.serve.auth import TokenConfig
from medlens.serve.hosts import REFUSED, host_of
from medlens.serve.inputs import MAX_MEMBERS
from medlens.serve.workers import THREAD_PREFIX

LOCAL = "http://localhost"
PATIENT = "Doe^Jane"
FULL = "full-access-token-0123456789"
VESSELS_ONLY = "vessels-only-token-0123456789"
VESSELS_AND_GHOST = "vessels-and-ghost-token-0123456789"  # may use a model nobody serves


@pytest.fixture(scope="module")
def client(pneumonia_run: Path, drive_run: Path):
    with TestClient(create_app([pneumonia_run, drive_run]), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def chest_png(pneumonia_test_images: np.ndarray, png_bytes) -> bytes:
    return png_bytes(pneumonia_test_images[0])


def _upload(data: bytes, name: str = "upload.bin") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def _nifti_gz(shape: tuple[int, ...], data: bytes = b"") -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    return gzip.compress(header.binaryblock + b"\x00" * 4 + data)


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def _no_leak(detail: str, workspace: Path, *values: str) -> None:
    assert "\n" not in detail and "Traceback" not in detail
    assert "/tmp" not in detail and str(workspace) not in detail and "medlens-serve" not in detail
    for value in values:
        assert value not in detail, value


# --- the voxel budget --------------------------------------------------------------------


def test_decompression_bombs_are_refused_413_before_decoding(
    client: TestClient, pneumonia_test_images: np.ndarray, dicom_bytes
):
    nifti = _nifti_gz((4096, 4096, 4096))
    png = _png_declaring(60000, 60000)
    dicom = pydicom.dcmread(io.BytesIO(dicom_bytes(pneumonia_test_images[0], PATIENT)))
    dicom.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dicom.Rows = dicom.Columns = 65535
    dicom.NumberOfFrames = 10000
    buffer = io.BytesIO()
    dicom.save_as(buffer)
    for what, bomb in {"nifti": nifti, "png": png, "deflated dicom": buffer.getvalue()}.items():
        assert len(bomb) < 5000, what
        start = time.perf_counter()
        response = client.post("/v1/predict?model=pneumonia", files=_upload(bomb))
        assert response.status_code == 413, (what, response.text)
        assert time.perf_counter() - start < 5, what
        detail = response.json()["detail"]
        assert f"more than {DEFAULT_MAX_VOXELS:,} voxels" in detail, what
        _no_leak(detail, client.app.state.workspace, "65535", "4096", "60000", "Doe")


def test_the_service_option_sets_its_own_voxel_budget(pneumonia_run: Path):
    # 16 Mi voxels of zeros: about 16 kB gzipped; under the default budget it is decoded
    volume = _nifti_gz((256, 256, 256), bytes(256**3))
    assert len(volume) < 100_000
    with TestClient(create_app([pneumonia_run]), base_url=LOCAL) as default:
        decoded = default.post("/v1/predict", files=_upload(volume))
    assert decoded.status_code == 422  # read, then found not to fit a 2D model
    with TestClient(create_app([pneumonia_run], max_voxels=2**20), base_url=LOCAL) as small:
        refused = small.post("/v1/predict", files=_upload(volume))
        assert refused.status_code == 413
        assert "more than 1,048,576 voxels" in refused.json()["detail"]
    with pytest.raises(ConfigError, match="max-voxels"):
        create_app([pneumonia_run], max_voxels=0)


# --- bounded workers, cancelled work -------------------------------------------------------


def test_a_timed_out_job_is_cancelled_and_retries_never_stack_worker_threads(
    pneumonia_run: Path, chest_png: bytes, monkeypatch: pytest.MonkeyPatch
):
    real_predict = analysis.predict_with_features
    lock = threading.Lock()
    state = {"running": 0, "peak": 0, "explained": 0}
    release = threading.Event()

    def slow_predict(*args, **kwargs):  # a model that takes seconds and cannot be interrupted
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        try:
            release.wait(10)
            return real_predict(*args, **kwargs)
        finally:
            with lock:
                state["running"] -= 1

    def counted_explain(*args, **kwargs):
        state["explained"] += 1
        raise AssertionError("Grad-CAM ran for a request that had timed out")

    monkeypatch.setattr(analysis, "predict_with_features", slow_predict)
    monkeypatch.setattr(analysis, "explain", counted_explain)

    app = create_app([pneumonia_run], timeout_s=0.4, max_concurrent=1)
    prefix = app.state.workers.thread_prefix + "_"
    assert prefix.startswith(THREAD_PREFIX)

    def worker_threads() -> int:
        return sum(t.name.startswith(prefix) for t in threading.enumerate())

    with TestClient(app, base_url=LOCAL) as hurried:
        first = hurried.post("/v1/predict", files=_upload(chest_png))
        assert first.status_code == 504
        retries, threads = [], []
        for _ in range(6):
            retry = hurried.post("/v1/predict", files=_upload(chest_png))
            retries.append(retry)
            threads.append(worker_threads())
        assert {r.status_code for r in retries} == {503}  # the one worker is still busy
        assert retries[0].headers["retry-after"]
        assert retries[0].json()["detail"] == "every worker is busy; retry later"
        assert state["peak"] == 1 and max(threads) <= 1  # never more than the bound

        release.set()  # the slow model returns; the job stops at its next checkpoint
        deadline = time.monotonic() + 10
        while state["running"] and time.monotonic() < deadline:
            time.sleep(0.02)
        monkeypatch.setattr(analysis, "predict_with_features", real_predict)
        again = None
        while time.monotonic() < deadline:  # the worker is free again once the job stopped
            again = hurried.post("/v1/predict?heatmap=false", files=_upload(chest_png))
            if again.status_code != 503:
                break
            time.sleep(0.05)
        assert again is not None and again.status_code == 200, again.text if again else None
        assert state["explained"] == 0  # the cancelled job never reached Grad-CAM
        assert worker_threads() <= 1
        assert sorted(p.name for p in app.state.workspace.iterdir()) == ["onnx"]


# --- texts: fixed sentences, nothing echoed --------------------------------------------------


def test_422_bodies_are_fixed_sentences_without_patient_values_or_server_paths(
    client: TestClient, pneumonia_test_images: np.ndarray, dicom_bytes, zip_bytes
):
    workspace = client.app.state.workspace
    first = pydicom.dcmread(io.BytesIO(dicom_bytes(pneumonia_test_images[0], PATIENT)))
    second = pydicom.dcmread(io.BytesIO(dicom_bytes(pneumonia_test_images[1], "Roe^Richard")))
    members, uids = {}, []
    for name, ds in (("a/IM1", first), ("b/IM1", second)):
        ds.SeriesDescription = f"{ds.PatientName} chest"
        uids.append(str(ds.SeriesInstanceUID))
        buffer = io.BytesIO()
        ds.save_as(buffer)
        members[name] = buffer.getvalue()
    two_series = client.post(
        "/v1/predict?model=pneumonia", files=_upload(zip_bytes(members), "s.zip")
    )
    assert two_series.status_code == 422
    detail = two_series.json()["detail"]
    assert detail.startswith("the zip does not hold one readable DICOM series")
    _no_leak(detail, workspace, "Doe", "Jane", "Roe", "chest", *uids)

    # nibabel's own message names the file: the server's temporary path
    not_nifti = client.post(
        "/v1/predict?model=pneumonia", files=_upload(gzip.compress(b"not an image " * 40))
    )
    assert not_nifti.status_code == 422
    assert not_nifti.json()["detail"].startswith("the NIfTI file cannot be read")
    _no_leak(not_nifti.json()["detail"], workspace, "image.nii")

    evil = "<script>alert(1)</script>"
    invalid = client.post(f"/v1/segment?model=vessels&format={evil}", files=_upload(b"x"))
    assert invalid.status_code == 422
    assert invalid.json()["detail"] == "invalid parameter: format"


def test_every_zip_entry_counts_against_the_member_limit(
    client: TestClient, pneumonia_test_images: np.ndarray, dicom_bytes
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("series/IM1", dicom_bytes(pneumonia_test_images[0]))
        for k in range(MAX_MEMBERS):  # folders are entries too
            archive.writestr(zipfile.ZipInfo(f"d{k:05d}/"), b"")
    response = client.post("/v1/predict?model=pneumonia", files=_upload(buffer.getvalue(), "s.zip"))
    assert response.status_code == 422
    assert response.json()["detail"] == f"the zip holds more than {MAX_MEMBERS} entries"


# --- the trusted-host check ------------------------------------------------------------------


def test_without_tokens_only_loopback_or_allowed_host_headers_are_answered(
    pneumonia_run: Path, client: TestClient
):
    app = client.app
    for url in ("http://localhost", "http://127.0.0.1:8000", "http://[::1]:8000"):
        with TestClient(app, base_url=url) as local:
            assert local.get("/v1/models").status_code == 200, url
    for url in ("http://evil.example", "http://attacker.test:8000", "http://10.1.2.3"):
        with TestClient(app, base_url=url) as rebound:
            for path in ("/v1/models", "/healthz", "/"):
                response = rebound.get(path)
                assert response.status_code == 400, (url, path)
                assert response.json()["detail"] == REFUSED
                assert response.headers["x-request-id"]  # still logged, with an id
    proxied = create_app([pneumonia_run], allowed_hosts=["medlens.internal", "10.1.2.3"])
    with TestClient(proxied, base_url="http://medlens.internal:8080") as named:
        assert named.get("/v1/models").status_code == 200
    with TestClient(proxied, base_url="http://10.1.2.3") as by_address:
        assert by_address.get("/v1/models").status_code == 200
    with TestClient(proxied, base_url="http://evil.example") as rebound:
        assert rebound.get("/v1/models").status_code == 400
    with pytest.raises(ConfigError, match="allowed-hosts"):
        create_app([pneumonia_run], allowed_hosts=["http://medlens.internal/"])
    assert host_of("[::1]:80") == "::1" and host_of("LocalHost.") == "localhost"
    assert host_of("a:b:c") == "" and host_of("[::1]x") == ""


def test_with_tokens_the_host_check_applies_only_when_hosts_are_given(pneumonia_run: Path):
    tokens = TokenConfig.from_mapping({FULL: "*"})
    headers = {"Authorization": f"Bearer {FULL}"}
    with TestClient(create_app([pneumonia_run], tokens), base_url="http://medlens.example") as c:
        assert c.get("/v1/models", headers=headers).status_code == 200
    app = create_app([pneumonia_run], tokens, allowed_hosts=["medlens.example"])
    with TestClient(app, base_url="http://other.example") as c:
        assert c.get("/v1/models", headers=headers).status_code == 400


# --- headers: ASCII whatever the names ---------------------------------------------------------


@pytest.fixture(scope="module")
def unicode_run(drive_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vessel run, served as a folder named 血管 whose class is named 血管 too."""
    run = tmp_path_factory.mktemp("runs") / "血管"
    shutil.copytree(drive_run, run)
    labels = json.loads((run / "labels.json").read_text())
    labels["class_names"] = ["background", "血管"]
    (run / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    return run


def test_a_class_name_outside_latin_1_never_breaks_the_segment_response(
    unicode_run: Path, drive_dir: Path, png_bytes
):
    with PIL.Image.open(drive_dir / "test" / "images" / "01_test.tif") as image:
        retina = png_bytes(np.asarray(image.convert("RGB")))
    with TestClient(create_app([unicode_run]), base_url=LOCAL) as c:
        as_file = c.post("/v1/segment?format=png", files=_upload(retina))
        assert as_file.status_code == 200, as_file.text
        assert as_file.headers["x-model"] == "%E8%A1%80%E7%AE%A1"
        name, count = as_file.headers["x-class-voxels"].split("=")
        assert name == "%E8%A1%80%E7%AE%A1" and int(count) > 0

        as_json = c.post("/v1/segment?format=json", files=_upload(retina))
        assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
        body = as_json.json()
        assert body["class_voxels"] == {"血管": int(count)}
        assert body["model"] == "血管" and body["mask_format"] == "png"
        assert body["media_type"] == "image/png" and body["filename"] == "mask.png"
        assert base64.b64decode(body["mask_base64"]) == as_file.content

        accept = c.post(
            "/v1/segment?format=nifti",
            files=_upload(retina),
            headers={"Accept": "application/json"},
        )
        assert accept.status_code == 200
        assert accept.json()["mask_format"] == "nifti"
        assert accept.json()["class_voxels"] == {"血管": int(count)}
        assert "x-class-voxels" not in accept.headers


# --- model lists filtered by token ------------------------------------------------------------


def test_errors_about_models_list_only_the_models_the_token_may_use(
    pneumonia_run: Path, drive_run: Path, chest_png: bytes
):
    tokens = TokenConfig.from_mapping(
        {FULL: "*", VESSELS_ONLY: ["vessels"], VESSELS_AND_GHOST: ["vessels", "ghost"]}
    )
    with TestClient(create_app([pneumonia_run, drive_run], tokens)) as c:

        def post(query: str, token: str):
            return c.post(
                f"/v1/predict{query}",
                files=_upload(chest_png),
                headers={"Authorization": f"Bearer {token}"},
            )

        unnamed = post("", VESSELS_ONLY)
        assert unnamed.status_code == 400
        assert unnamed.json()["detail"] == "name the model: ?model= one of vessels"
        unknown = post("?model=ghost", VESSELS_AND_GHOST)
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "no model of that name; this token may use vessels"
        forbidden = post("?model=pneumonia", VESSELS_ONLY)
        assert forbidden.status_code == 403 and "pneumonia" not in forbidden.json()["detail"]
        everything = post("?model=nope", FULL)
        assert everything.status_code == 404 and "pneumonia, vessels" in everything.json()["detail"]
        assert "nope" not in everything.json()["detail"]


def test_a_series_whose_uids_are_paths_is_refused(drive_run: Path, tmp_path: Path) -> None:
    """A SEG copies its source's UIDs into its references: ``1.2/../x`` must not get there."""
    import io
    import zipfile

    import pydicom
    from fastapi.testclient import TestClient
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    from medlens.serve.app import create_app
    from medlens.serve.inputs import BAD_UID

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k in range(2):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
            meta.MediaStorageSOPInstanceUID = f"1.2.3.{k + 1}"
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, f"1.2.3.{k + 1}"
            ds.StudyInstanceUID = "1.2.3/../../escape/study"
            ds.SeriesInstanceUID = "1.2.4"
            ds.FrameOfReferenceUID = "/etc/passwd"
            ds.Modality = "OT"
            ds.Rows = ds.Columns = 96
            ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 8, 8, 7
            ds.PixelRepresentation = 0
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.ImagePositionPatient = [0, 0, float(k)]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [1, 1]
            ds.PixelData = bytes(96 * 96)
            out = io.BytesIO()
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
            archive.writestr(f"s{k}.dcm", out.getvalue())
    with TestClient(create_app([drive_run]), base_url="http://localhost") as client:
        answer = client.post(
            "/v1/segment?format=dicom-seg",
            files={"file": ("series.zip", buffer.getvalue(), "application/zip")},
        )
    assert answer.status_code == 422
    assert answer.json()["detail"] == BAD_UID
    assert "escape" not in answer.text and "passwd" not in answer.text
