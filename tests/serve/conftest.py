"""Tiny real run folders and real inputs for the export, service and web page tests.

The runs (``pneumonia_run``, ``drive_run``, ``ct_run``) are the session fixtures of
tests/conftest.py, as is ``cells_run`` (a tiny detection run on real blood smears).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def _secondary_capture(pixels: np.ndarray, patient_name: str = "Doe^Jane") -> bytes:
    """A real image as a DICOM Secondary Capture (uint8 grey (H, W) or RGB (H, W, 3), one
    frame), with a patient name and geometry (so it can also be a one-slice series)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[patient_name, "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient_name, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient_name, "series"])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[patient_name, "frame"])
    ds.PatientName = patient_name
    ds.PatientID = "MEDLENS-TEST-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime = "20240102", "101500"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "A0001", ""
    ds.SeriesNumber = 1
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    colour = pixels.ndim == 3
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def dicom_bytes() -> Callable[..., bytes]:
    """uint8 (H, W) or (H, W, 3) -> a DICOM Secondary Capture file (bytes) with a patient name."""
    return _secondary_capture


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def zip_bytes() -> Callable[[dict[str, bytes]], bytes]:
    """{member name: bytes} -> a zip archive (bytes); names are written as given."""
    return _zip_bytes


# -- the browser tests (test_web_page*.py): a live service and headless Chromium ------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _live(app) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_service() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with live_service(app) as url:`` the app served on a loopback port."""
    return _live


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Selenium (a clear failure when it is missing)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the browser test needs Debian's Chromium and its "
            "driver (sudo apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,1400",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), "the browser took no screenshot"
    flag = os.environ.get("MEDLENS_ARTIFACTS", "")
    if flag:
        folder = REPO / "test-artifacts" if flag.lower() in {"1", "true", "yes"} else Path(flag)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
    return path


@pytest.fixture(scope="session")
def save_screenshot() -> Callable[..., Path]:
    """``save_screenshot(driver, tmp_path, name)``: into tmp_path, and into
    ``test-artifacts/`` (or the folder ``$MEDLENS_ARTIFACTS`` names) when that is set."""
    return _screenshot
