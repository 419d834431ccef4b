"""``read_image``: one entry point for every file format medlens reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medlens.data.dicom import is_dicom_file, read_dicom_file
from medlens.data.dicom_series import read_dicom_series
from medlens.data.image import Image
from medlens.data.nifti import is_nifti_path, read_nifti
from medlens.data.numpy_file import read_npy
from medlens.data.raster import read_raster
from medlens.errors import InputError

# Leading bytes of each raster format; they decide over a misleading file extension.
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "raster",
    b"\xff\xd8\xff": "raster",
    b"II*\x00": "raster",
    b"MM\x00*": "raster",
    b"GIF87a": "raster",
    b"GIF89a": "raster",
    b"BM": "raster",
    b"\x93NUMPY": "npy",
}
_READERS: dict[str, Callable[..., Image]] = {
    "dicom": read_dicom_file,
    "dicom_series": read_dicom_series,
    "nifti": read_nifti,
    "npy": read_npy,
    "raster": read_raster,
}
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".dcm", ".dicom", ".nii", ".npy"}
)


def image_format(path: str | Path) -> str | None:
    """The reader for ``path``: ``dicom_series`` (a folder), ``dicom``, ``nifti``, ``npy`` or
    ``raster``, decided by content first and extension second; None when unknown."""
    path = Path(path)
    if path.is_dir():
        return "dicom_series"
    if is_nifti_path(path):
        return "nifti"
    if is_dicom_file(path):
        return "dicom"
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if path.suffix.lower() in {".dcm", ".dicom"}:
        return "dicom"  # pydicom will say what is wrong with it
    return None


def read_image(path: str | Path, max_voxels: int | None = None) -> Image:
    """Read any supported image: PNG/JPEG/BMP/GIF/TIFF, ``.npy``, NIfTI, a DICOM file, or a
    folder holding one DICOM series.

    Every reader checks the size the file declares against the voxel budget before decoding
    (``medlens.data.budget``): ``max_voxels``, else ``$MEDLENS_MAX_VOXELS``, else 256 Mi.

    Returns:
        A float32 channel-first ``Image`` with spacing in mm (1.0 per axis where the format
        has none). See ``read_raster``, ``read_npy``, ``read_nifti``, ``read_dicom_file`` and
        ``read_dicom_series`` for each format's layout.

    Raises:
        VoxelBudgetError: the file declares more voxels than the budget (an ``InputError``).
        InputError: missing file, unknown format, or the reader's own errors.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    kind = image_format(path)
    if kind is None:
        if path.suffix.lower() == ".npz":
            raise InputError(path, "is an .npz archive; read it with format 'medmnist'")
        raise InputError(path, "is not a supported image (PNG, JPEG, TIFF, DICOM, NIfTI or .npy)")
    return _READERS[kind](path, max_voxels=max_voxels)
