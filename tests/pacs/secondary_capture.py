"""Real images as DICOM Secondary Captures, each in a study of its own, for the PACS tests."""

from __future__ import annotations

import io
from typing import Any

import highdicom as hd
import numpy as np


def secondary_capture_image(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    pixel_spacing: tuple[float, float] | None = None,
    **attributes: Any,
) -> hd.sc.SCImage:
    """``pixels`` (uint8, grey or RGB ``(H, W, 3)``) as a Secondary Capture dataset;
    ``pixel_spacing`` in mm (None: not recorded); ``attributes``: more highdicom arguments
    (``manufacturer``, ``patient_id``, ``study_date``...)."""
    return hd.sc.SCImage(
        pixel_array=pixels.astype(np.uint8),
        photometric_interpretation=photometric,
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=("L", "F"),
        study_instance_uid=hd.UID(),
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        pixel_spacing=pixel_spacing,
        **attributes,
    )


def secondary_capture(
    pixels: np.ndarray,
    patient_id: str = "P-1",
    photometric: str = "MONOCHROME2",
    manufacturer: str = "PneumoniaMNIST",
    sop_instance_uid: str | None = None,
    patient_name: str = "Chest^Test",
) -> bytes:
    """``pixels`` as a Part 10 Secondary Capture of a test patient (``patient_name``); a
    crafted ``sop_instance_uid`` is written as given (pydicom only warns)."""
    image = secondary_capture_image(
        pixels,
        photometric,
        manufacturer=manufacturer,
        patient_id=patient_id,
        patient_name=patient_name,
        patient_birth_date="19700101",
        patient_sex="F",
        accession_number="A1",
        study_id="1",
        study_date="20240102",
        study_time="101500",
    )
    if sop_instance_uid is not None:
        image.SOPInstanceUID = sop_instance_uid
        image.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    buffer = io.BytesIO()
    image.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
