"""Tiny real run folders and real inputs for the export, service and web page tests.

The runs (``pneumonia_run``, ``drive_run``, ``ct_run``) are the session fixtures of
tests/conftest.py, as is ``cells_run`` (a tiny detection run on real blood smears).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

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
