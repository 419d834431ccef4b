"""Read PNG, JPEG, BMP, GIF and TIFF images (8- and 16-bit, grey or colour)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import PIL.Image
import tifffile

from medlens.data.budget import VoxelBudgetError, check_voxels, voxel_budget
from medlens.data.image import Image
from medlens.data.validation import as_float32, first_line
from medlens.errors import InputError

RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"})
_GREY_MODES = {"1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_TIFF_SPATIAL_AXES = {"YX": 2, "ZYX": 3, "IYX": 3, "QYX": 3}
_PIL_LIMIT_LOCK = threading.Lock()


def read_raster(path: str | Path, max_voxels: int | None = None) -> Image:
    """Read a 2D raster image, or a multi-page greyscale TIFF as a volume.

    Grey images become ``(1, H, W)``, colour images ``(3, H, W)`` (an alpha channel is
    dropped; palette images are expanded, and collapse to one channel when the palette is
    grey). Values keep their stored range (0..255 for 8-bit, 0..65535 for 16-bit) as
    float32; ``meta["stored_dtype"]`` names the stored type. Spacing is 1.0 pixel per axis:
    these formats carry no physical pixel size medlens trusts.

    The header's size (width x height x channels, x pages for a TIFF stack) is checked
    against the voxel budget (``medlens.data.budget``) before any pixel is decoded.

    Raises:
        VoxelBudgetError: the header declares more values than the budget.
        InputError: unreadable, truncated or multi-frame (non-TIFF) files, NaN values.
    """
    path = Path(path)
    limit = voxel_budget(max_voxels)
    if path.suffix.lower() in {".tif", ".tiff"} and _needs_tifffile(path):
        array, stored = _read_tiff(path, limit)
    else:
        array, stored = _read_with_pil(path, limit)
    image_array = as_float32(array, path)
    spacing = (1.0,) * (image_array.ndim - 1)
    meta = {
        "stored_dtype": stored,
        "format": path.suffix.lower().lstrip("."),
        "spacing_source": "assumed",  # not from the file: distances on it are in px, not mm
    }
    return Image(array=image_array, spacing=spacing, source=str(path), meta=meta)


def _allow_in_pil(limit: int) -> None:
    """Keep PIL's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, checked by
    ``PIL.Image.open``: a warning over it, an error over twice it) at least ``limit`` pixels,
    so PIL never refuses an image the voxel budget allows; medlens' budget, counted over every
    channel, does the refusing. PIL's limit is process-wide, so it is only ever raised."""
    with _PIL_LIMIT_LOCK:
        current = PIL.Image.MAX_IMAGE_PIXELS
        if current is not None and current < limit:
            PIL.Image.MAX_IMAGE_PIXELS = limit


def _open_pil(path: Path, limit: int) -> PIL.Image.Image:
    """``PIL.Image.open`` (the header only), PIL's bomb error turned into the budget's."""
    _allow_in_pil(limit)
    try:
        return PIL.Image.open(path)
    except PIL.Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = int(found.group(1)) if found else 2 * limit + 1
        raise VoxelBudgetError(path, declared, limit, "pixels in the image header") from None


def _pil_channels(img: PIL.Image.Image) -> int:
    """The channels ``_pil_to_channels_first`` makes of ``img`` at most (a palette expands)."""
    return 4 if img.mode == "P" else len(img.getbands())


def _read_with_pil(path: Path, limit: int) -> tuple[np.ndarray, str]:
    try:
        with _open_pil(path, limit) as img:
            width, height = img.size
            check_voxels(path, (_pil_channels(img), height, width), limit)
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise InputError(path, f"holds {frames} frames; medlens reads single-frame images")
            img.load()
            return _pil_to_channels_first(img, path)
    except InputError:
        raise
    except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(path, f"cannot be read as an image ({first_line(exc)})") from None


def _pil_to_channels_first(img: PIL.Image.Image, path: Path) -> tuple[np.ndarray, str]:
    mode = img.mode
    if mode == "1":
        img = img.convert("L")  # 0/255 like any 8-bit mask
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "LA":
        img = img.getchannel("L")
    elif mode in {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}:
        img = img.convert("RGB")
    if img.mode not in _GREY_MODES | {"RGB", "RGBA"}:
        raise InputError(path, f"has the unsupported image mode {img.mode!r}")
    array = np.asarray(img)
    if array.ndim == 2:
        return array[None], str(array.dtype)
    rgb = array[..., :3]  # drops alpha
    if (
        mode == "P"
        and np.array_equal(rgb[..., 0], rgb[..., 1])
        and np.array_equal(rgb[..., 0], rgb[..., 2])
    ):
        return rgb[None, ..., 0], str(rgb.dtype)
    return np.moveaxis(rgb, -1, 0), str(rgb.dtype)


def _needs_tifffile(path: Path) -> bool:
    """PIL cannot keep 16-bit colour or read page stacks; tifffile can (uncompressed/deflate)."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            deep_colour = page.samplesperpixel > 1 and page.bitspersample > 8
            return deep_colour or len(tif.pages) > 1 or page.sampleformat == 3
    except Exception:  # not a TIFF tifffile understands: let PIL give the error
        return False


def _read_tiff(path: Path, limit: int) -> tuple[np.ndarray, str]:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            check_voxels(path, tuple(series.shape), limit)
            array = series.asarray()
            extra = tuple(tif.pages.first.extrasamples or ())
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot be read as a TIFF image ({first_line(exc)})") from None
    stored = str(array.dtype)
    if axes in _TIFF_SPATIAL_AXES:
        return array[None], stored
    if axes in {"YXS", "SYX"}:
        channels_first = np.moveaxis(array, -1, 0) if axes == "YXS" else array
        keep = channels_first.shape[0] - len(extra) if extra else channels_first.shape[0]
        return channels_first[: max(keep, 1)], stored
    if axes == "CYX":
        return array, stored
    raise InputError(path, f"TIFF axes {axes!r} are not a 2D image or a greyscale page stack")
