"""Read and write segmentation masks (label maps of class indices) in every format medlens uses.

A mask is an ``Image`` of shape ``(1, *spatial)`` and dtype uint8 holding class indices
(0 = background). Binary masks drawn for viewing (0/255 PNG, GIF and TIFF) are mapped to
{0, 1} on reading and back to 0/255 on writing, so a written PNG opens as a visible mask
in any viewer and reads back unchanged.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image

from medlens.data.budget import check_voxels
from medlens.data.image import Image
from medlens.data.nifti import is_nifti_path
from medlens.data.raster import read_raster
from medlens.data.readers import image_format, read_image
from medlens.data.validation import first_line
from medlens.errors import InputError
from medlens.io_utils import write_atomic

MASK_WRITE_SUFFIXES = (".png", ".nii", ".nii.gz", ".npy")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DICOM_FORMATS = {"dicom", "dicom_seg"}
_AFFINE_TOLERANCE_MM = 0.01
_LARGEST_SMALL_LABEL = 127  # above this, a raster mask is read as a 0/255-style binary mask


def read_mask(path: str | Path, reference: Image | None = None) -> Image:
    """Read a mask as a ``(1, *spatial)`` uint8 label map.

    Formats:
        - PNG, GIF, TIFF, BMP: a grey image whose values are all at most 127 is a label map of
          class indices, kept as is. Otherwise it must hold at most two grey levels (0/255
          style, also 0/251 as in one DRIVE mask), binarised to {0, 1} at the midpoint between
          them. Palette images with a colour palette give their palette indices; RGB images
          must have three equal channels.
        - NIfTI, ``.npy``, DICOM images: integer values 0..255 kept as class indices.
        - DICOM SEG: the segments as a label map (``as_label_map``), aligned slice by slice to
          ``reference`` when it is a series read by ``read_dicom_series``.

    Args:
        path: the mask file.
        reference: the image the mask belongs to. When given, the mask must have its spatial
            shape (and, when both carry one, the same affine within 0.01 mm) and takes its
            spacing (mm) and affine.

    Raises:
        InputError: unreadable file, several channels, non-integer values, values above 255,
            grey levels that are neither a binary mask nor a small label map, or a shape or
            grid that differs from ``reference`` (the message names both files).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    kind = image_format(path)
    if kind == "dicom_series":
        raise InputError(path, "is a folder; a mask is one file (PNG, NIfTI, .npy or DICOM SEG)")
    if kind is None:
        raise InputError(
            path, "is not a mask medlens reads (PNG, GIF, TIFF, NIfTI, .npy, DICOM SEG)"
        )
    if kind == "dicom" and _is_seg(path):
        mask = _read_seg(path, reference)
    elif kind == "raster":
        mask = _raster_mask(path)
    else:
        mask = _label_map(read_image(path), path)
    return mask if reference is None else _on_reference_grid(mask, reference, path)


def write_mask(mask: Image, path: str | Path, reference: Image | None = None) -> Path:
    """Write a label map, choosing the format by the suffix of ``path``.

    - ``.png``: 2D masks only. A binary mask ({0, 1}) is written as 0/255 so it is visible
      in any viewer; other label maps keep their class indices (at most 127, so that
      ``read_mask`` reads them back unchanged).
    - ``.nii`` / ``.nii.gz``: uint8 with the affine of ``reference`` (else of ``mask``; else
      a diagonal of the spacing in mm). DICOM (LPS) affines are converted to NIfTI's RAS.
    - ``.npy``: the ``(1, *spatial)`` uint8 array.

    The file is written atomically (temporary file, then rename). For DICOM SEG use
    ``medlens.data.dicom_seg.write_dicom_seg``, which needs the source series.

    Args:
        mask: ``(1, *spatial)`` integer class indices 0..255 (bool allowed).
        path: output file.
        reference: the image the mask belongs to; must have the mask's spatial shape.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: an unsupported suffix, a mask that is not one integer channel in 0..255,
            a shape that differs from ``reference``, or a 3D mask or labels above 127 for PNG.
    """
    path = Path(path)
    labels = _mask_values(mask, path)
    geometry = reference if reference is not None else mask
    if reference is not None and reference.spatial_shape != mask.spatial_shape:
        raise InputError(
            path,
            f"mask is {mask.spatial_shape} but its image {reference.source} is "
            f"{reference.spatial_shape}",
        )
    name = path.name.lower()
    if name.endswith(".png"):
        payload = _png_bytes(labels, path)
    elif is_nifti_path(path):
        payload = _nifti_bytes(labels, geometry, compress=name.endswith(".gz"))
    elif name.endswith(".npy"):
        buffer = io.BytesIO()
        np.save(buffer, labels[None], allow_pickle=False)
        payload = buffer.getvalue()
    else:
        raise InputError(
            path,
            f"masks are written as {', '.join(MASK_WRITE_SUFFIXES)}; "
            "for DICOM SEG use write_dicom_seg with the source series",
        )
    return write_atomic(path, payload)


def ras_affine(image: Image) -> np.ndarray | None:
    """The image's affine in RAS mm (DICOM affines are LPS and are converted), or None."""
    if image.affine is None:
        return None
    if image.meta.get("format") in _DICOM_FORMATS:
        return LPS_TO_RAS @ image.affine
    return np.asarray(image.affine, dtype=np.float64)


def _is_seg(path: Path) -> bool:
    from medlens.data.dicom_seg import is_dicom_seg  # highdicom is imported only for SEG files

    return is_dicom_seg(path)


def _read_seg(path: Path, reference: Image | None) -> Image:
    from medlens.data.dicom_seg import as_label_map, read_dicom_seg

    series = reference if reference is not None and reference.meta.get("slice_files") else None
    return as_label_map(read_dicom_seg(path, series))


def _raster_mask(path: Path) -> Image:
    indices = _palette_indices(path)
    image = (
        read_raster(path) if indices is None else Image(indices[None], (1.0, 1.0), source=str(path))
    )
    if (
        image.num_channels == 3
        and np.array_equal(image.array[0], image.array[1])
        and np.array_equal(image.array[0], image.array[2])
    ):
        image = image.with_array(image.array[:1])
    if image.num_channels != 1:
        raise InputError(
            path,
            f"is a colour image with {image.num_channels} different channels; a mask holds class "
            "indices in one grey channel (or as palette indices)",
        )
    values = np.unique(image.array)
    binarised = bool(values.max() > _LARGEST_SMALL_LABEL)
    if binarised:
        if values.size > 2:
            raise InputError(
                path,
                f"holds {values.size} grey levels from {values.min():g} to {values.max():g}: "
                f"neither a binary mask (two levels such as 0/255) nor a label map of class "
                f"indices up to {_LARGEST_SMALL_LABEL}",
            )
        threshold = (values.min() + values.max()) / 2 if values.size == 2 else values.max() / 2
        image = image.with_array((image.array > threshold).astype(np.uint8))
    mask = _label_map(image, path)
    mask.meta["binarised"] = binarised
    return mask


def _palette_indices(path: Path) -> np.ndarray | None:
    """Palette indices of a palette image whose used colours are not all grey (a colour-coded
    label map); None for every other image (read by ``read_raster``)."""
    try:
        with PIL.Image.open(path) as img:
            if img.mode != "P" or getattr(img, "n_frames", 1) > 1:
                return None
            check_voxels(path, (img.size[1], img.size[0]))  # over: read_raster refuses it
            indices = np.asarray(img)
            palette = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    except Exception:  # read_raster reports unreadable files
        return None
    used = np.unique(indices)
    if used.max() >= len(palette):
        return indices
    colours = palette[used]
    grey = np.all(colours[:, :1] == colours, axis=1).all()
    return None if grey else indices


def _label_map(image: Image, path: Path) -> Image:
    """``image`` as a one-channel uint8 label map, refusing what is not one."""
    if image.num_channels != 1:
        raise InputError(
            path, f"has {image.num_channels} channels; a mask is one channel of class indices"
        )
    array = image.array
    if array.dtype != np.uint8:
        if not np.all(np.mod(array, 1) == 0):
            raise InputError(path, "holds non-integer values; a mask holds class indices")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise InputError(
                path, f"holds values from {low:g} to {high:g}; class indices are 0..255"
            )
        array = array.astype(np.uint8)
    meta = {**image.meta, "mask": True}
    return Image(
        array=array, spacing=image.spacing, affine=image.affine, source=str(path), meta=meta
    )


def _on_reference_grid(mask: Image, reference: Image, path: Path) -> Image:
    if mask.spatial_shape != reference.spatial_shape:
        raise InputError(
            path,
            f"mask is {mask.spatial_shape} but its image {reference.source} is "
            f"{reference.spatial_shape} (spatial shapes must match)",
        )
    ours, theirs = ras_affine(mask), ras_affine(reference)
    if ours is not None and theirs is not None:
        gap = float(np.abs(ours - theirs).max())
        if gap > _AFFINE_TOLERANCE_MM:
            raise InputError(
                path,
                f"lies on a different grid from its image {reference.source} (affines differ by "
                f"up to {gap:.3g} mm)",
            )
    meta = {**mask.meta, "reference": reference.source}
    if reference.meta.get("format") in _DICOM_FORMATS:
        # the affine is now the reference's, and so is its convention (LPS, see ras_affine)
        meta.update(format=reference.meta["format"], mask_format=mask.meta.get("format", ""))
    return Image(
        array=mask.array,
        spacing=reference.spacing,
        affine=reference.affine,
        source=mask.source,
        meta=meta,
    )


def _mask_values(mask: Image, path: Path) -> np.ndarray:
    """The spatial uint8 array of a one-channel integer mask."""
    if mask.num_channels != 1:
        raise InputError(path, f"mask has {mask.num_channels} channels; write one label map")
    array = np.asarray(mask.array[0])
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.mod(array, 1) == 0):
        raise InputError(path, "mask holds non-integer values; write class indices")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise InputError(path, f"mask holds values from {array.min()} to {array.max()}; 0..255 fit")
    return array.astype(np.uint8)


def _png_bytes(labels: np.ndarray, path: Path) -> bytes:
    if labels.ndim != 2:
        raise InputError(path, f"PNG holds 2D masks; this one is {labels.shape}: write .nii.gz")
    top = int(labels.max()) if labels.size else 0
    if top > _LARGEST_SMALL_LABEL:
        raise InputError(
            path, f"labels up to {top} would read back as grey levels from PNG; write .nii.gz"
        )
    viewable = labels * np.uint8(255) if top <= 1 else labels
    buffer = io.BytesIO()
    try:
        PIL.Image.fromarray(viewable, mode="L").save(buffer, format="PNG")
    except (OSError, ValueError) as exc:  # pragma: no cover - PIL rarely fails on uint8
        raise InputError(path, f"cannot be encoded as PNG ({first_line(exc)})") from None
    return buffer.getvalue()


def _nifti_bytes(labels: np.ndarray, geometry: Image, compress: bool) -> bytes:
    affine = ras_affine(geometry)
    if affine is None or labels.ndim != 3:
        affine = np.diag([*geometry.spacing, *([1.0] * (4 - len(geometry.spacing)))])
    image = nib.Nifti1Image(labels, affine)
    image.header.set_data_dtype(np.uint8)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0) if compress else raw
