"""Text burned into the pixels: files that may carry it are flagged; boxes can be blanked."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits

from medlens.privacy.options import PixelRegion

BURNED_IN_MODALITIES = frozenset({"US", "SC", "OT"})


def burned_in_reason(ds: Dataset) -> str | None:
    """Why the pixels of ``ds`` may show identifying text, or None.

    The reason names only the attribute or the modality, never a value of the patient.
    """
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "Burned In Annotation is YES"
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return f"modality {modality} often carries burned-in text"
    return None


def regions_for(ds: Dataset, regions: tuple[PixelRegion, ...]) -> tuple[PixelRegion, ...]:
    """The configured regions that apply to this file (by modality) when it has pixels."""
    if "PixelData" not in ds:
        return ()
    modality = str(ds.get("Modality", "")).strip().upper()
    return tuple(r for r in regions if r.modality is None or r.modality.upper() == modality)


def blank_regions(ds: Dataset, regions: tuple[PixelRegion, ...]) -> None:
    """Set the pixels inside each region to 0 in every frame and store them uncompressed.

    Regions reaching past the image are clipped to it. Compressed pixel data is decoded
    first (colour comes back as RGB) and written as Explicit VR Little Endian.
    """
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    pixels = np.array(ds.pixel_array, copy=True)
    view = pixels.reshape(frames, rows, cols, samples)
    for region in regions:
        view[:, region.row_start : region.row_stop, region.col_start : region.col_stop, :] = 0
    if int(ds.BitsAllocated) == 1:
        ds.PixelData = pack_bits(pixels)
    else:
        ds.set_pixel_data(pixels, str(ds.PhotometricInterpretation), int(ds.BitsStored))
