"""Reading a file for de-identification, and refusing the ones that cannot be trusted.

pydicom reads a truncated file without complaint (it stops where the bytes end), so the
checks here compare what was read with what the elements declared. Every refusal reason is a
fixed sentence: it never quotes a value of the file, so it can go into the log.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

_UNDEFINED = 0xFFFFFFFF
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


class RefusedFile(Exception):
    """A file left out of the output; ``reason`` holds no patient information."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _parse(data: bytes) -> tuple[Dataset, list[str]]:
    ds: Dataset
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except InvalidDicomError:
            ds = _parse_without_preamble(data)
        except Exception as exc:  # pydicom raises many types on corrupt input
            raise RefusedFile(f"the DICOM header cannot be parsed ({type(exc).__name__})") from None
    return ds, [str(w.message) for w in caught]


def _parse_without_preamble(data: bytes) -> Dataset:
    not_dicom = RefusedFile("not a DICOM file")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:
        raise not_dicom from None
    if "SOPClassUID" not in ds and not ("Rows" in ds and "Columns" in ds):
        raise not_dicom
    return ds


def _check_complete(ds: Dataset, data: bytes, messages: list[str]) -> None:
    if any("End of file reached" in m for m in messages):
        raise RefusedFile("truncated: the file ends inside the pixel data or a sequence")
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != _UNDEFINED
            and raw.value is not None
            and len(raw.value) != raw.length
        ):
            raise RefusedFile("truncated: an element is shorter than its declared length")
    # Elements come in ascending tag order, so the last one must end where the file ends;
    # bytes left over are the start of an element header that the file cut off.
    last = ds.get_item(max(ds.keys())) if len(ds) else None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if (
        isinstance(last, RawDataElement)
        and last.length != _UNDEFINED
        and syntax != DeflatedExplicitVRLittleEndian
        and last.value_tell + last.length < len(data)
    ):
        raise RefusedFile("truncated: the file ends inside an element header")


def _check_pixels(ds: Dataset) -> None:
    has_geometry = "Rows" in ds and "Columns" in ds and "BitsAllocated" in ds
    if "PixelData" not in ds:
        if has_geometry:
            raise RefusedFile("truncated: image attributes present but no pixel data")
        return
    if not has_geometry:
        raise RefusedFile(
            "pixel data without Rows, Columns and Bits Allocated: it can be neither read "
            "nor checked for burned-in text"
        )
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_encapsulated:
        try:
            for _ in generate_fragments(ds.PixelData):
                pass
        except Exception:
            raise RefusedFile("the encapsulated pixel data is malformed") from None
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        samples = 2  # two chroma samples shared by each pair of pixels
    count = int(ds.Rows) * int(ds.Columns) * samples * frames
    expected = (count * bits + 7) // 8
    if len(ds.PixelData) < expected:
        raise RefusedFile("truncated: the pixel data is shorter than Rows x Columns x frames need")


_OVER_BUDGET = (
    "its pixel data declares more voxels than the voxel budget (MEDLENS_MAX_VOXELS); "
    "refused before reading it"
)


def _check_declared_size(data: bytes, path: Path | None, max_voxels: int | None) -> Dataset | None:
    """Refuse a file whose header declares more pixels than the voxel budget, or whose
    compressed frames claim more than the header, before its pixel data is read; a deflated
    file comes back read in full, its inflation bounded by its declared size."""
    from medlens.data.budget import VoxelBudgetError
    from medlens.data.dicom_limits import (
        check_dicom_budget,
        is_deflated,
        read_deflated,
        transfer_syntax_of,
    )
    from medlens.errors import InputError

    syntax = transfer_syntax_of(path) if path is not None else None
    try:
        if path is not None and is_deflated(syntax):
            return read_deflated(path, header_only=False, limit=max_voxels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        check_dicom_budget(header, path or "<bytes>", max_voxels)
    except VoxelBudgetError:
        raise RefusedFile(_OVER_BUDGET) from None
    except InputError:
        raise RefusedFile("its deflated data set is larger than its header declares") from None
    except Exception:
        return None  # the full parse below says what is wrong
    return None


def read_for_deidentification(
    data: bytes, path: Path | None = None, max_voxels: int | None = None
) -> Dataset:
    """Parse the bytes of one file and check that it is complete.

    The size the header declares is checked against the voxel budget first (see
    ``medlens.data.budget``); a deflated file is inflated no further than its header allows.
    Every element, nested ones included, is decoded here so that a broken sequence is
    found before anything is written.

    Args:
        data: the file's bytes.
        path: the file (needed to read a deflated file in bounded steps).
        max_voxels: the budget (None: ``MEDLENS_MAX_VOXELS`` or the default).

    Raises:
        RefusedFile: not DICOM, over the budget, truncated, malformed, or a DICOMDIR.
    """
    from medlens.data.dicom_limits import check_codestreams
    from medlens.errors import InputError

    deflated = _check_declared_size(data, path, max_voxels)
    messages: list[str] = []
    if deflated is not None:
        ds = deflated
    else:
        ds, messages = _parse(data)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and len(meta) and not meta.get("TransferSyntaxUID"):
            raise RefusedFile(
                "the file meta information names no Transfer Syntax UID, so the encoding "
                "of the data set would be a guess"
            )
        _check_complete(ds, data, messages)
        try:
            check_codestreams(ds, path or "<bytes>")
        except InputError:
            raise RefusedFile(
                "a compressed frame declares more pixels than the header; refused before decoding"
            ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in ds.iterall():
                pass
            _check_pixels(ds)
    except RefusedFile:
        raise
    except Exception as exc:
        raise RefusedFile(f"an element cannot be decoded ({type(exc).__name__})") from None
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", ""))
    if sop_class == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise RefusedFile(
            "a DICOMDIR (file-set index) is not de-identified; rebuild it from the output"
        )
    if not ds.get("SOPInstanceUID") and "PixelData" not in ds and "SOPClassUID" not in ds:
        raise RefusedFile("not a DICOM instance (no SOP Class, no SOP Instance, no pixels)")
    return ds


def uids_are_digits(ds: Dataset) -> bool:
    """Whether every UI element, nested ones included, is digits and dots (leading zeros,
    which older scanners write, are allowed; ``/``, ``..`` or letters are not)."""
    from medlens.data.uids import is_lenient_uid

    for element in ds.iterall():
        if element.VR != "UI" or element.value in (None, ""):
            continue
        values = element.value if element.VM > 1 else [element.value]
        if not all(is_lenient_uid(str(v)) for v in values):
            return False
    return True
