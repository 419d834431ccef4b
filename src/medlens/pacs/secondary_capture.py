"""An explanation overlay (a rendered PNG) as a DICOM Secondary Capture in its source's study."""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image as PILImage
from pydicom.dataset import Dataset

from medlens import __version__
from medlens.errors import InputError
from medlens.pacs.sr import (
    MANUFACTURER,
    SERIES_DESCRIPTION_PREFIX,
    ModelIdentity,
    with_patient_study_defaults,
)


def read_rgb(png: str | Path) -> np.ndarray:
    """A PNG as ``(rows, columns, 3)`` uint8 RGB (alpha dropped).

    Raises:
        InputError: the file cannot be read as an image.
    """
    try:
        with PILImage.open(png) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise InputError(png, f"unreadable image ({type(exc).__name__})") from None


def overlay_secondary_capture(
    source: Dataset,
    rgb: np.ndarray,
    model: ModelIdentity,
    description: str,
    series_instance_uid: str | None = None,
    series_number: int = 902,
    instance_number: int = 1,
    sop_instance_uid: str | None = None,
    caption: str | None = None,
) -> hd.sc.SCImage:
    """A Secondary Capture of a rendered overlay, filed with ``source``'s patient and study.

    The image is DERIVED/SECONDARY, references ``source`` in SourceImageSequence, carries
    Manufacturer "medlens" and a SeriesDescription that starts with "medlens", has burned-in
    annotation (titles drawn into the pixels) and no spatial relation to the patient.

    Args:
        source: header of the explained instance (the first one, for a volume).
        rgb: ``(rows, columns, 3)`` uint8 pixels.
        model: the model whose decision is explained.
        description: what the overlay shows, e.g. ``"Grad-CAM pneumonia"`` (SeriesDescription
            becomes ``"medlens <description>"``).
        series_instance_uid: the image's series; default a new one.
        series_number: SeriesNumber of the series.
        instance_number: InstanceNumber of the image in its series.
        sop_instance_uid: the image's SOPInstanceUID; default a new one.
        caption: what this image shows (its burned-in title, e.g. ``"Referred (out of
            distribution) - Grad-CAM for normal (p = 0.49)"``), recorded in
            DerivationDescription; default ``description``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (rows, columns, 3) uint8, got {rgb.shape} {rgb.dtype}")
    with warnings.catch_warnings():
        # highdicom doubts single-component patient names copied from the source: not ours
        warnings.filterwarnings("ignore", ".*intended person name", UserWarning)
        image = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=with_patient_study_defaults(source),
            pixel_array=rgb,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            # highdicom wants a frame of reference; the orientation is emptied below
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            patient_orientation=("L", "P"),
            series_instance_uid=series_instance_uid or hd.UID(),
            series_number=series_number,
            sop_instance_uid=sop_instance_uid or hd.UID(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            series_description=f"{SERIES_DESCRIPTION_PREFIX} {description}"[:64],
            manufacturer_model_name=model.algorithm_name[:64],
            software_versions=__version__,
            # an empty SpecificCharacterSet (seen in real CTs) means the default repertoire
            specific_character_set=source.get("SpecificCharacterSet") or None,
        )
    image.PatientOrientation = []  # a rendered figure has none (Type 2: empty = unknown)
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.BurnedInAnnotation = "YES"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    image.SourceImageSequence = [reference]
    image.DerivationDescription = f"{caption or description} by {model.algorithm_name}"[:1024]
    return image
