"""Text burned into the pixels: files that may carry it are flagged; boxes can be blanked.

A file is flagged (written to the quarantine folder, never beside the clean files) when any
of these holds:

- Burned In Annotation is ``YES``;
- its Modality is US, SC or OT (modalities whose pixels often show names and dates);
- it has pixels and its SOP class or encoding is one that captures a screen or a camera
  view: the Secondary Capture family (a dose-report screenshot is a CT "image"), the
  visible-light (VL) family (endoscopy, microscopy, photography, ophthalmic, whole-slide:
  slide labels), video (the three video SOP classes or an MPEG-2 / MPEG-4 / HEVC transfer
  syntax), or an Image Type whose values include ``SECONDARY``.

The last group is lifted only when both the file states ``Burned In Annotation = NO`` and
the user blanked at least one pixel region in it (Clean Pixel Data): the device's word alone
is not enough (screen-capture software often writes NO), nor a box alone (it may miss text
elsewhere). The first two rules are never lifted.

Every reason is a fixed phrase: it may name the modality only when the modality is one of
the fixed set above, and never quotes any other value of the file.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import pack_bits
from pydicom.uid import MPEGTransferSyntaxes

from medlens.privacy.options import PixelRegion

BURNED_IN_MODALITIES = frozenset({"US", "SC", "OT"})
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
VIDEO_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
    }
)
VL_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.77.1."  # every VL image storage SOP class
VIDEO_TRANSFER_SYNTAXES = frozenset(str(uid) for uid in MPEGTransferSyntaxes)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _sop_class(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    value = ds.get("SOPClassUID") or getattr(meta, "MediaStorageSOPClassUID", None) or ""
    return str(value).strip().rstrip("\x00")


def _image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType")
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, MultiValue | list | tuple) else str(value).split("\\")
    return [str(v).strip().upper() for v in values]


def _capture_reasons(ds: Dataset) -> list[str]:
    """The SOP class, encoding and Image Type reasons (the group BIA NO + a box can lift)."""
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        return []
    reasons = []
    sop_class = _sop_class(ds)
    if sop_class in SECONDARY_CAPTURE_CLASSES:
        reasons.append("Secondary Capture SOP class")
    elif sop_class in VIDEO_CLASSES:
        reasons.append("video SOP class")
    elif sop_class.startswith(VL_CLASS_ROOT):
        reasons.append("visible light (VL) SOP class")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and str(syntax) in VIDEO_TRANSFER_SYNTAXES:
        reasons.append("video transfer syntax")
    if "SECONDARY" in _image_type(ds):
        reasons.append("Image Type SECONDARY")
    return reasons


def burned_in_reasons(ds: Dataset, blanked: bool = False) -> list[str]:
    """Why the pixels of ``ds`` may show identifying text; empty when nothing points to it.

    Args:
        ds: the dataset as read (before de-identification).
        blanked: True when at least one configured pixel region is blanked in this file.

    Returns:
        Fixed phrases (see the module docstring), in a stable order.
    """
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    reasons = []
    if burned_in == "YES":
        reasons.append("Burned In Annotation is YES")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in BURNED_IN_MODALITIES:
        reasons.append(f"modality {modality} often carries burned-in text")
    if not (blanked and burned_in == "NO"):
        reasons += _capture_reasons(ds)
    return reasons


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
