"""Read one DICOM file (single- or multi-frame) into an Image in physical units.

Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) are
decoded by pydicom with the pylibjpeg plugins. Grey pixels go through the Modality LUT
(``RescaleSlope``/``RescaleIntercept``, Hounsfield units for CT); MONOCHROME1 is inverted so
that larger values are always brighter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medlens.data.budget import voxel_budget
from medlens.data.dicom_geometry import irregular_spacing, lps_affine, slice_offsets
from medlens.data.dicom_limits import (
    check_codestreams,
    check_dicom_budget,
    is_deflated,
    read_deflated,
    transfer_syntax_of,
)
from medlens.data.image import Image
from medlens.data.validation import first_line, require_finite
from medlens.errors import InputError

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def is_dicom_file(path: str | Path) -> bool:
    """True when the file carries the DICOM Part 10 marker ``DICM`` at byte 128."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom_dataset(
    path: str | Path, header_only: bool = False, max_voxels: int | None = None
) -> Dataset:
    """``pydicom.dcmread`` with its failures turned into ``InputError`` naming the file.

    Files without the 128-byte preamble and ``DICM`` marker (older ACR-NEMA style) are read
    too, provided they hold a SOP Class UID or an image (Rows, Columns); the transfer syntax
    pydicom detected is then recorded in the file meta.

    A Deflated Explicit VR Little Endian file is inflated step by step (pydicom would
    inflate all of it, even for the header): only up to the pixel data for ``header_only``,
    and otherwise no further than the size its header declares, once that size has passed
    the voxel budget (``medlens.data.dicom_limits``).

    Args:
        path: a DICOM file.
        header_only: stop before the pixel data (fast, for sorting and grouping).
        max_voxels: the voxel budget for a deflated file's full read (None: the default).

    Raises:
        VoxelBudgetError: a deflated file declaring more voxels than the budget.
        InputError: not DICOM, corrupt or truncated.
    """
    try:
        if is_deflated(transfer_syntax_of(path)):
            return read_deflated(Path(path), header_only, max_voxels)
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except InvalidDicomError:
        return _read_without_preamble(path, header_only)
    except Exception as exc:  # pydicom raises many types on corrupt or truncated input
        raise InputError(path, f"DICOM file is corrupt or truncated ({first_line(exc)})") from None


def _read_without_preamble(path: str | Path, header_only: bool) -> Dataset:
    not_dicom = InputError(path, "is not a DICOM file (no 'DICM' marker and no DICOM header)")
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=header_only)
    except Exception:
        raise not_dicom from None
    if "SOPClassUID" not in ds and not ("Rows" in ds and "Columns" in ds):
        raise not_dicom
    if getattr(ds.file_meta, "TransferSyntaxUID", None) is None:
        implicit, little = ds.original_encoding
        if implicit:
            syntax = ImplicitVRLittleEndian
        else:
            syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def read_dicom_file(path: str | Path, max_voxels: int | None = None) -> Image:
    """Read a DICOM image file.

    A single frame becomes ``(C, H, W)`` with spacing ``(dy, dx)`` from ``PixelSpacing``
    (row spacing, column spacing) in mm; a multi-frame file becomes a volume
    ``(C, F, H, W)`` with spacing ``(dz, dy, dx)``. ``C`` is 1 for grey and 3 for colour
    (YBR is converted to RGB, palette colour expanded). Grey values are float32 after the
    Modality LUT (HU for CT). ``meta`` holds ``modality``, ``window_center``/``window_width``
    (in the output values), ``photometric_interpretation``, ``transfer_syntax``,
    ``patient_id`` and the study/series UIDs. A single frame has no affine (the patient
    geometry of a stack comes from ``read_dicom_series``).

    The declared size (Rows x Columns x NumberOfFrames x SamplesPerPixel) is checked against
    the voxel budget before any pixel is decoded, for every transfer syntax (see
    ``dicom_pixels``).

    Raises:
        VoxelBudgetError: the header declares more voxels than the budget.
        InputError: not DICOM, corrupt or truncated, no pixel data, a transfer syntax the
            installed decoders cannot read, NaN pixels.
    """
    path = Path(path)
    limit = voxel_budget(max_voxels)
    ds = read_dicom_dataset(path, max_voxels=limit)
    pixels = dicom_pixels(ds, path, max_voxels=limit)  # (C, F, H, W)
    dy, dx, known = pixel_spacing(ds)
    meta = dicom_meta(ds, pixels)
    meta["spacing_known"] = known
    if pixels.shape[1] == 1:
        return Image(array=pixels[:, 0], spacing=(dy, dx), source=str(path), meta=meta)
    dz, affine = _multiframe_geometry(ds, dy, dx)
    return Image(array=pixels, spacing=(dz, dy, dx), affine=affine, source=str(path), meta=meta)


def dicom_pixels(ds: Dataset, path: str | Path, max_voxels: int | None = None) -> np.ndarray:
    """Decoded pixels as float32 ``(C, F, H, W)``: Modality LUT applied to grey images,
    MONOCHROME1 inverted, colour as RGB.

    Before decoding, the declared size is checked against the voxel budget (``max_voxels``,
    None for the default) and each compressed JPEG / JPEG-LS / JPEG 2000 frame's own size
    against the header's.

    Raises:
        VoxelBudgetError: the header declares more voxels than the budget.
        InputError: no pixel data, a frame larger than declared, undecodable pixel data.
    """
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        sop = getattr(ds.get("SOPClassUID"), "name", "no SOP class")
        raise InputError(path, f"has no pixel data ({sop}): not an image, or the file is cut short")
    check_dicom_budget(ds, path, max_voxels)
    check_codestreams(ds, path)
    try:
        array = ds.pixel_array
    except NotImplementedError:
        syntax = _syntax_name(ds)
        raise InputError(
            path, f"transfer syntax {syntax} cannot be decoded by the installed decoders"
        ) from None
    except Exception as exc:
        raise InputError(
            path, f"pixel data of {_syntax_name(ds)} could not be decoded ({first_line(exc)})"
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    frames = _number_of_frames(ds)
    colour = photometric not in {"MONOCHROME1", "MONOCHROME2"}
    stacked = array.reshape((frames, *array.shape[-3 if colour else -2 :]))
    if not colour:
        values = _modality_lut(stacked, ds)
        if ds.get("Modality") == "RTDOSE" and ds.get("DoseGridScaling"):
            values = values * float(ds.DoseGridScaling)  # stored integers -> dose units
        if photometric == "MONOCHROME1":
            low, high = _output_range(ds, values)
            values = (low + high) - values
        channels_first = values[None]
    else:
        channels_first = np.moveaxis(stacked, -1, 0)[:3].astype(np.float64)
    require_finite(channels_first, path)
    return np.ascontiguousarray(channels_first, dtype=np.float32)


def pixel_spacing(ds: Dataset) -> tuple[float, float, bool]:
    """``(row spacing, column spacing, known)`` in mm from ``PixelSpacing``, the pixel-measures
    functional group, or ``ImagerPixelSpacing``; ``(1.0, 1.0, False)`` when none is present."""
    measures = _functional_group(ds, "PixelMeasuresSequence")
    for holder, keyword in (
        (ds, "PixelSpacing"),
        (measures, "PixelSpacing"),
        (ds, "ImagerPixelSpacing"),
    ):
        value = holder.get(keyword) if holder is not None else None
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return float(value[0]), float(value[1]), True
    return 1.0, 1.0, False


def dicom_meta(ds: Dataset, pixels: np.ndarray | None = None) -> dict[str, Any]:
    """The header facts downstream code uses; windows are expressed in the output values."""
    photometric = str(ds.get("PhotometricInterpretation", ""))
    center, width = _window(ds)
    if photometric.upper() == "MONOCHROME1" and center is not None and pixels is not None:
        low, high = _output_range(ds, pixels)
        center = (low + high) - center
    modality = str(ds.get("Modality", ""))
    meta: dict[str, Any] = {
        "format": "dicom",
        "modality": modality,
        "units": _units(ds),
        "photometric_interpretation": photometric,
        "inverted_monochrome1": photometric.upper() == "MONOCHROME1",
        "transfer_syntax": _syntax_name(ds),
        "stored_dtype": _stored_dtype(ds),
        "window_center": center,
        "window_width": width,
        "patient_id": str(ds.get("PatientID", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
    }
    return meta


def _units(ds: Dataset) -> str:
    modality = str(ds.get("Modality", ""))
    if modality == "CT":
        return "HU"
    if modality == "RTDOSE":
        return str(ds.get("DoseUnits", "")).upper()
    return ""


def _stored_dtype(ds: Dataset) -> str:
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    return f"{'int' if signed else 'uint'}{int(ds.get('BitsAllocated', 16) or 16)}"


def _syntax_name(ds: Dataset) -> str:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "<missing transfer syntax>"
    return f"{uid} ({uid.name})" if uid.name != str(uid) else str(uid)


def _number_of_frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _functional_group(ds: Dataset, sequence: str, frame: int | None = None) -> Dataset | None:
    """The item of a functional-group sequence, per-frame first (when ``frame`` is given)."""
    holders = []
    if frame is not None and ds.get("PerFrameFunctionalGroupsSequence"):
        holders.append(ds.PerFrameFunctionalGroupsSequence[frame])
    if ds.get("SharedFunctionalGroupsSequence"):
        holders.append(ds.SharedFunctionalGroupsSequence[0])
    for holder in holders:
        if holder.get(sequence):
            return holder.get(sequence)[0]
    return None


def _rescale(ds: Dataset, frame: int) -> tuple[float, float]:
    holder = ds if ("RescaleSlope" in ds or "RescaleIntercept" in ds) else None
    holder = holder or _functional_group(ds, "PixelValueTransformationSequence", frame)
    if holder is None:
        return 1.0, 0.0
    slope = holder.get("RescaleSlope")
    intercept = holder.get("RescaleIntercept")
    return float(slope) if slope not in (None, "") else 1.0, float(intercept) if intercept not in (
        None,
        "",
    ) else 0.0


def _modality_lut(frames: np.ndarray, ds: Dataset) -> np.ndarray:
    if ds.get("ModalityLUTSequence"):
        return np.stack([apply_modality_lut(f, ds) for f in frames]).astype(np.float64)
    out = frames.astype(np.float64)
    for i in range(out.shape[0]):
        slope, intercept = _rescale(ds, i)
        if (slope, intercept) != (1.0, 0.0):
            out[i] = out[i] * slope + intercept
    return out


def _output_range(ds: Dataset, values: np.ndarray) -> tuple[float, float]:
    """The range the stored bits can express, mapped through the Modality LUT; the data's own
    range for float pixel data."""
    if "PixelData" not in ds or "BitsStored" not in ds:
        return float(np.min(values)), float(np.max(values))
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    stored = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2**bits - 1])
    if ds.get("ModalityLUTSequence"):
        mapped = apply_modality_lut(stored, ds).astype(np.float64)
    else:
        slope, intercept = _rescale(ds, 0)
        mapped = stored * slope + intercept
    return float(mapped.min()), float(mapped.max())


def _window(ds: Dataset) -> tuple[float | None, float | None]:
    holder = ds if "WindowCenter" in ds else _functional_group(ds, "FrameVOILUTSequence", 0)
    if holder is None or "WindowCenter" not in holder or "WindowWidth" not in holder:
        return None, None

    def first(value: Any) -> float:
        return float(value[0]) if isinstance(value, MultiValue) else float(value)

    try:
        return first(holder.WindowCenter), first(holder.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None, None


def _multiframe_geometry(ds: Dataset, dy: float, dx: float) -> tuple[float, np.ndarray | None]:
    """Slice spacing (mm) and LPS affine of a multi-frame file when its frames form an evenly
    spaced stack; otherwise the declared spacing and no affine (cine, several stacks)."""
    frames = _number_of_frames(ds)
    orientation = _frame_attr(ds, "PlaneOrientationSequence", "ImageOrientationPatient", 0)
    positions = [
        _frame_attr(ds, "PlanePositionSequence", "ImagePositionPatient", i) for i in range(frames)
    ]
    if orientation is not None and all(p is not None for p in positions):
        pos = np.asarray(positions, dtype=np.float64)
        offsets = slice_offsets(pos, orientation)
        order_ok = np.all(np.diff(offsets) > 0) or np.all(np.diff(offsets) < 0)
        if order_ok and irregular_spacing(np.sort(offsets)) is None:
            step = (pos[-1] - pos[0]) / (frames - 1)
            dz = float(abs(offsets[-1] - offsets[0]) / (frames - 1))
            return dz, lps_affine(pos[0], orientation, dy, dx, step)
    measures = _functional_group(ds, "PixelMeasuresSequence")
    for holder in (ds, measures):
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = holder.get(keyword) if holder is not None else None
            if value not in (None, "") and float(value) > 0:
                return float(value), None
    return 1.0, None


def _frame_attr(ds: Dataset, sequence: str, keyword: str, frame: int) -> list[float] | None:
    if keyword in ds:
        return [float(v) for v in ds.get(keyword)]
    item = _functional_group(ds, sequence, frame)
    if item is None or keyword not in item:
        return None
    return [float(v) for v in item.get(keyword)]
