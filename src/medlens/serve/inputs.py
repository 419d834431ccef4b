"""What an uploaded file is, and reading it as an ``Image``.

The kind is decided by the file's leading bytes, never by the client's file name or content
type: PNG, JPEG, a 2D TIFF, DICOM (Part 10), a zip holding one DICOM series, or NIfTI
(``.nii`` or gzip-compressed ``.nii.gz``). Anything else is refused with 415.

Every kind but a zip is read by ``medlens.data.readers.read_image``, as ``medlens predict``
reads the same file: a TIFF (classic, either byte order; 8- or 16-bit, grey or colour, as
``read_raster`` reads it) gives the pixels and a spacing of 1 pixel. A multi-page TIFF, which
``read_image`` reads as a volume, is refused (422): its page spacing is not recorded in the
file, so send a volume as NIfTI or as a zipped DICOM series, which record theirs.

A zip is unpacked member by member into server-chosen names (``00001.dcm``, ...); an archive
with a member whose name is absolute or climbs out with ``..`` (zip-slip), a link, an
encrypted member, or more than ``MAX_MEMBERS`` entries (files, folders and anything else in
its directory) is refused as a whole, and the unpacked size is counted against a limit as it
is written (a zip bomb stops there).

The image is read with the voxel budget (``medlens.data.budget``): an upload that declares
more voxels than the service's limit is refused (413) before it is decoded.

Errors say what is wrong in fixed sentences: never a value read from the upload (a patient
name, a series description, a UID) and never a server path. The reader's own reason stays
on the server (its exception type is logged).
"""

from __future__ import annotations

import logging
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medlens.data.budget import VoxelBudgetError
from medlens.data.image import Image
from medlens.errors import MedlensError
from medlens.serve.service_errors import ServiceError

log = logging.getLogger(__name__)

MAX_MEMBERS = 4096
KIND_SUFFIX = {
    "png": ".png",
    "jpeg": ".jpg",
    "dicom": ".dcm",
    "zip": ".zip",
    "nifti": ".nii",
    "nifti-gz": ".nii.gz",
    "tiff": ".tif",  # read_raster chooses its TIFF reader (tifffile or PIL) by this suffix
}
SUPPORTED = "PNG, JPEG, a 2D TIFF, DICOM, a zip of one DICOM series, or NIfTI (.nii, .nii.gz)"
#: The leading bytes of a classic TIFF, little- and big-endian (``medlens.data.readers``' own).
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_SKIPPED_MEMBERS = {"dicomdir", "thumbs.db"}
# What the client is told when its upload cannot be read: one fixed sentence per kind.
UNREADABLE = {
    "png": "the PNG cannot be read: it is damaged or cut short",
    "jpeg": "the JPEG cannot be read: it is damaged or cut short",
    "dicom": (
        "the DICOM file cannot be read: it is damaged or cut short, holds no image, or uses a "
        "compression the service cannot decode"
    ),
    "zip": (
        "the zip does not hold one readable DICOM series: send the files of one series, with "
        "slices of one size and orientation, evenly spaced"
    ),
    "nifti": "the NIfTI file cannot be read: it is damaged or cut short, or not 2D to 4D",
    "nifti-gz": "the NIfTI file cannot be read: it is damaged or cut short, or not 2D to 4D",
    "tiff": (
        "the TIFF cannot be read: it is damaged or cut short, or holds a layout or compression "
        "the service cannot decode"
    ),
}
TIFF_STACK = (
    "the TIFF holds a stack of pages; the service reads 2D TIFF images: send a volume as NIfTI "
    "or as a zip of one DICOM series, which record the spacing of its slices"
)


def too_many_voxels(limit: int) -> ServiceError:
    return ServiceError(
        413, f"the image is larger than this service decodes (more than {limit:,} voxels)"
    )


@dataclass
class Upload:
    """An uploaded image, read.

    Attributes:
        image: the pixels and geometry, as ``medlens.data.readers`` reads them.
        kind: a key of ``KIND_SUFFIX``.
        series_dir: the folder of the unpacked series when the upload was a zip, else None.
    """

    image: Image
    kind: str
    series_dir: Path | None = None


def sniff_kind(path: Path) -> str:
    """The upload's kind from its first 352 bytes.

    Raises:
        ServiceError: 415 for anything medlens does not accept over the service.
    """
    with open(path, "rb") as handle:
        head = handle.read(352)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[128:132] == b"DICM":
        return "dicom"  # before TIFF: a DICOM preamble may hold a TIFF header (dual-format)
    if head.startswith(_TIFF_MAGIC):
        return "tiff"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "nifti-gz"  # nibabel says so if the gzip holds something else
    if _is_nifti_header(head):
        return "nifti"
    raise ServiceError(415, f"unsupported file type; send {SUPPORTED}")


def _is_nifti_header(head: bytes) -> bool:
    nifti1 = head[344:348] in (b"n+1\x00", b"ni1\x00") and head[:4] in (
        b"\x5c\x01\x00\x00",
        b"\x00\x00\x01\x5c",
    )
    nifti2 = head[4:8] in (b"n+2\x00", b"ni2\x00") and head[:4] in (
        b"\x1c\x02\x00\x00",
        b"\x00\x00\x02\x1c",
    )
    return nifti1 or nifti2


def read_upload(
    raw: Path,
    max_unpacked_bytes: int,
    max_voxels: int | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> Upload:
    """Read the uploaded file ``raw`` (in its private folder) as an image.

    Args:
        raw: the file ``receive_upload`` wrote.
        max_unpacked_bytes: the most a zip may unpack to, in bytes.
        max_voxels: the voxel budget (None: ``$MEDLENS_MAX_VOXELS`` or the default).
        checkpoint: called between unpacking and reading; raises to stop the work.

    Raises:
        ServiceError: 415 unsupported kind, 413 a zip that unpacks too large or an image that
            declares more voxels than the budget, 422 content medlens cannot read (a fixed
            sentence per kind, ``UNREADABLE``) or a multi-page TIFF (``TIFF_STACK``).
    """
    from medlens.data.dicom_series import read_dicom_series
    from medlens.data.readers import read_image

    kind = sniff_kind(raw)
    named = raw.with_name("image" + KIND_SUFFIX[kind])
    raw.rename(named)  # the readers choose by suffix for NIfTI
    series_dir = None
    try:
        if kind == "zip":
            series_dir = extract_series(
                named, raw.parent / "series", max_unpacked_bytes, checkpoint
            )
            if checkpoint is not None:
                checkpoint()
            image = read_dicom_series(series_dir, max_voxels=max_voxels)
        else:
            image = read_image(named, max_voxels=max_voxels)
    except VoxelBudgetError as exc:
        log.info("an upload declares %d voxels, over the limit of %d", exc.declared, exc.limit)
        raise too_many_voxels(exc.limit) from None
    except MedlensError as exc:
        log.info("the %s upload cannot be read (%s)", kind, type(exc).__name__)
        raise ServiceError(422, UNREADABLE[kind]) from None
    except ServiceError:
        raise
    except Exception as exc:  # a reader's unexpected failure is still the upload's fault
        log.warning("the %s upload cannot be read (unexpected %s)", kind, type(exc).__name__)
        raise ServiceError(422, UNREADABLE[kind]) from None
    if kind == "tiff" and image.spatial_dims != 2:
        raise ServiceError(422, TIFF_STACK)
    if kind == "dicom":
        _check_uids([named])
    elif series_dir is not None:
        _check_uids(sorted(p for p in series_dir.rglob("*") if p.is_file()))
    return Upload(image=image, kind=kind, series_dir=series_dir)


#: The UIDs a result (a DICOM SEG, an SR) copies from its source into its references.
_REFERENCED_UIDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
)
BAD_UID = "the DICOM upload holds a UID that is not a DICOM UID (digits separated by dots)"


def _check_uids(files: list[Path]) -> None:
    """Refuse (422) an upload whose UIDs could not be copied safely into a result: a UID
    such as ``1.2/../x`` or ``/etc/passwd`` is data a SEG would reference verbatim."""
    import warnings

    import pydicom

    from medlens.data.uids import is_lenient_uid

    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:
                continue  # not one of the series' images; the reader passed it over
        for keyword in _REFERENCED_UIDS:
            value = ds.get(keyword)
            if value not in (None, "") and not is_lenient_uid(str(value)):
                log.info("an upload holds an invalid %s", keyword)
                raise ServiceError(422, BAD_UID)


def is_unsafe_member(name: str) -> bool:
    """True for a zip member name that is absolute or leaves the extraction folder."""
    if not name or "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return any(part == ".." for part in re.split(r"[\\/]", name))


def extract_series(
    archive: Path, dest: Path, max_bytes: int, checkpoint: Callable[[], None] | None = None
) -> Path:
    """Unpack the files of a zip into ``dest`` under server-chosen names.

    Directories, hidden files, ``__MACOSX`` resource forks and ``DICOMDIR`` indexes are
    skipped; every other member becomes ``dest/NNNNN.dcm``. Every entry of the zip's
    directory (files, folders, anything else) counts against ``MAX_MEMBERS``. A zip whose
    directory declares more than ``max_bytes`` is refused before anything is unpacked; the
    bytes actually unpacked are counted too, since a declared size can lie.

    Raises:
        ServiceError: 422 not a zip, an unsafe, linked or encrypted member, a corrupt member,
            no files, or too many entries; 413 more than ``max_bytes`` unpacked.
    """
    try:
        archive_file = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ServiceError(422, "the zip archive is corrupt or truncated") from None
    with archive_file:
        members = archive_file.infolist()
        if len(members) > MAX_MEMBERS:
            raise ServiceError(422, f"the zip holds more than {MAX_MEMBERS} entries")
        for info in members:
            if is_unsafe_member(info.filename):
                raise ServiceError(
                    422, "the zip has a member with an absolute path or '..'; refused"
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ServiceError(422, "the zip has a symbolic link; refused")
            if info.flag_bits & 0x1:
                raise ServiceError(422, "the zip has an encrypted member")
        files = [info for info in members if _is_slice_member(info)]
        if not files:
            raise ServiceError(422, "the zip holds no files")
        if sum(info.file_size for info in files) > max_bytes:  # declared: refused unread
            raise _unpacks_too_large(max_bytes)
        dest.mkdir(mode=0o700)
        budget = max_bytes
        for number, info in enumerate(files, start=1):
            if checkpoint is not None:
                checkpoint()
            budget = _copy_member(archive_file, info, dest / f"{number:05d}.dcm", budget, max_bytes)
    return dest


def _unpacks_too_large(max_bytes: int) -> ServiceError:
    return ServiceError(413, f"the zip unpacks to more than {max_bytes / 2**20:.3g} MB")


def _is_slice_member(info: zipfile.ZipInfo) -> bool:
    if info.is_dir():
        return False
    parts = re.split(r"[\\/]", info.filename)
    hidden = any(p.startswith(".") for p in parts) or parts[0] == "__MACOSX"
    return not hidden and parts[-1].lower() not in _SKIPPED_MEMBERS


def _copy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, max_bytes: int
) -> int:
    """Copy one member, counting real bytes (the declared size can lie); the budget left."""
    try:
        with archive.open(info) as source, open(target, "xb") as sink:
            while block := source.read(1 << 20):
                budget -= len(block)
                if budget < 0:
                    raise _unpacks_too_large(max_bytes)
                sink.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError):
        raise ServiceError(
            422, "a member of the zip is corrupt or uses an unsupported compression"
        ) from None
    return budget


def for_model_dims(image: Image, spatial_dims: int) -> Image:
    """A one-slice volume (a series of one image) as a 2D image for a 2D model; any other
    image unchanged (the model's own checks report what does not fit)."""
    if spatial_dims == 2 and image.spatial_dims == 3 and image.spatial_shape[0] == 1:
        return Image(
            array=image.array[:, 0],
            spacing=tuple(image.spacing[1:]),
            source=image.source,
            meta=dict(image.meta),
        )
    return image
