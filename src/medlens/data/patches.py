"""Patch sampling for segmentation training, with foreground oversampling as in nnU-Net.

Most voxels of a medical image are background; patches drawn uniformly would rarely show a
small lesion. ``sample_patches`` centres a fraction of the patches (nnU-Net's default: a
third) on a random foreground voxel, choosing the label first so that every class gets an
equal share, and places the rest uniformly in the image (or centres them in the region of
interest). Every patch lies fully inside the image: pad images smaller than the patch with
``pad_to_patch`` first.

Example:
    >>> slices = sample_patches(mask, patch_size=64, n=8, rng=np.random.default_rng(0))
    >>> patch = image.array[(slice(None), *slices[0])]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError

PatchSlices = tuple[slice, ...]

#: nnU-Net's share of patches forced to hold foreground (``oversample_foreground_percent``).
FOREGROUND_FRACTION = 0.33
#: nnU-Net keeps at most this many voxel positions per class to centre patches on.
MAX_LOCATIONS_PER_LABEL = 10_000


@dataclass(frozen=True)
class VoxelLocations:
    """Where patches may be centred: the voxels of each foreground label and of the ROI.

    Attributes:
        labels: label -> ``(k, ndim)`` voxel indices holding that (non-zero) label.
        roi: ``(k, ndim)`` voxel indices inside the region of interest, or None (no ROI).
    """

    labels: dict[int, np.ndarray]
    roi: np.ndarray | None


def _subsample(points: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(points) <= limit:
        return points
    return points[np.sort(rng.choice(len(points), size=limit, replace=False))]


def voxel_locations(
    mask: np.ndarray,
    roi: np.ndarray | None = None,
    max_per_label: int | None = MAX_LOCATIONS_PER_LABEL,
    seed: int = 1234,
    source: str = "<mask>",
) -> VoxelLocations:
    """Scan a label map once for the voxels patches may be centred on.

    Computing these once per case spares ``sample_patches`` a scan of the whole mask on
    every call, which matters for CT volumes of 10^8 voxels.

    Args:
        mask: spatial label map (no channel axis); every non-zero value is foreground.
        roi: spatial region of interest (non-zero inside), same shape, or None.
        max_per_label: keep at most this many voxels per label (and of the ROI), chosen at
            random; None keeps all (exactly uniform sampling).
        seed: seed of that choice.
        source: names the case in error messages.

    Raises:
        InputError: the ROI's shape differs from the mask's, or the ROI is empty.
    """
    mask = np.asarray(mask)
    rng = np.random.default_rng(seed)
    flat = np.flatnonzero(mask)
    values = mask.reshape(-1)[flat]
    order = np.argsort(values, kind="stable")
    flat, values = flat[order], values[order]
    present, starts = np.unique(values, return_index=True)
    chunks = np.split(flat, starts[1:]) if flat.size else []
    labels = {}
    for label, chunk in zip(present, chunks, strict=True):
        points = np.stack(np.unravel_index(chunk, mask.shape), axis=1)
        labels[int(label)] = _subsample(points, max_per_label, rng)
    roi_points = None
    if roi is not None:
        roi = np.asarray(roi)
        if roi.shape != mask.shape:
            raise InputError(source, f"ROI shape {list(roi.shape)} differs from {list(mask.shape)}")
        inside = np.flatnonzero(roi)
        if inside.size == 0:
            raise InputError(source, "the ROI is empty: no voxel to place a patch in")
        roi_points = _subsample(
            np.stack(np.unravel_index(inside, roi.shape), axis=1), max_per_label, rng
        )
    return VoxelLocations(labels=labels, roi=roi_points)


def patch_shape(patch_size: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """One size per spatial axis (voxels) from a number or a list.

    Raises:
        ConfigError: keyed ``patch_size``: a size below 1 or a list of the wrong length.
    """
    sizes = [patch_size] * ndim if isinstance(patch_size, (int, np.integer)) else list(patch_size)
    if len(sizes) != ndim:
        raise ConfigError("patch_size", f"gives {len(sizes)} sizes for {ndim} spatial axes")
    if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
        raise ConfigError("patch_size", f"must be whole numbers of voxels >= 1, got {sizes}")
    return tuple(int(s) for s in sizes)


def _foreground_count(n: int, fraction: float, rng: np.random.Generator) -> int:
    """``n * fraction`` rounded up or down at random, so that it is right on average even
    for one patch per image (nnU-Net rounds per batch instead)."""
    expected = n * fraction
    whole = math.floor(expected + 1e-9)
    extra = expected - whole
    return whole + int(extra > 1e-9 and rng.random() < extra)


def _start(centre: np.ndarray, patch: Sequence[int], shape: Sequence[int]) -> list[int]:
    """Start of the patch centred on ``centre``, shifted to lie inside the image (it still
    holds the centre voxel)."""
    return [
        int(min(max(c - p // 2, 0), n - p)) for c, p, n in zip(centre, patch, shape, strict=True)
    ]


def sample_patches(
    mask: np.ndarray,
    patch_size: int | Sequence[int],
    n: int,
    foreground_fraction: float = FOREGROUND_FRACTION,
    rng: np.random.Generator | int = 0,
    roi: np.ndarray | None = None,
    locations: VoxelLocations | None = None,
) -> list[PatchSlices]:
    """Windows of ``patch_size`` voxels, a share of them centred on foreground.

    ``n * foreground_fraction`` patches (rounded at random to a whole number) are centred on
    a foreground voxel: a label is drawn uniformly among the non-zero labels present, then a
    voxel of that label. The others are drawn uniformly within the image, or centred on a
    uniformly drawn voxel of ``roi`` when one is given. A mask without foreground gets only
    the latter. Patches near an edge are shifted inward, so each lies fully inside the image.

    Args:
        mask: spatial label map (no channel axis), 0 for background.
        patch_size: one size or one per spatial axis (voxels); at most the mask's size.
        n: number of patches.
        foreground_fraction: share of patches forced onto foreground, in [0, 1].
        rng: a generator, or an integer seed.
        roi: optional spatial region of interest (non-zero inside), same shape as ``mask``.
        locations: ``voxel_locations(mask, roi)`` computed beforehand, to skip the scan.

    Returns:
        ``n`` tuples of slices, one per spatial axis, in random order.

    Raises:
        ConfigError: a bad ``patch_size``, ``n`` or ``foreground_fraction``.
        InputError: the mask is smaller than the patch, or the ROI is empty or misshapen.
    """
    mask = np.asarray(mask)
    patch = patch_shape(patch_size, mask.ndim)
    if any(p > s for p, s in zip(patch, mask.shape, strict=True)):
        raise InputError(
            "<mask>",
            f"image {list(mask.shape)} is smaller than the patch {list(patch)}; pad it first "
            "(pad_to_patch)",
        )
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError("patches_per_image", f"must be a whole number >= 0, got {n!r}")
    if not 0.0 <= float(foreground_fraction) <= 1.0:
        raise ConfigError("foreground_fraction", f"must lie in [0, 1], got {foreground_fraction!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if locations is None:
        locations = voxel_locations(mask, roi, max_per_label=None)
    labels = sorted(locations.labels)
    n_foreground = _foreground_count(int(n), float(foreground_fraction), rng) if labels else 0
    on_foreground = np.zeros(int(n), dtype=bool)
    on_foreground[:n_foreground] = True
    rng.shuffle(on_foreground)

    patches = []
    for forced in on_foreground:
        if forced:
            points = locations.labels[labels[int(rng.integers(len(labels)))]]
            start = _start(points[rng.integers(len(points))], patch, mask.shape)
        elif locations.roi is not None:
            start = _start(locations.roi[rng.integers(len(locations.roi))], patch, mask.shape)
        else:
            start = [int(rng.integers(s - p + 1)) for p, s in zip(patch, mask.shape, strict=True)]
        patches.append(tuple(slice(b, b + p) for b, p in zip(start, patch, strict=True)))
    return patches


def crop_window(
    array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float | bool = 0
) -> np.ndarray:
    """The spatial window ``[start, start + size)`` of a ``(C, *spatial)`` array, keeping its
    dtype; parts outside the array (negative ``start`` or past the end) hold ``fill``."""
    out = np.full((array.shape[0], *size), fill, dtype=array.dtype)
    src, dst = [slice(None)], [slice(None)]
    for begin, length, n in zip(start, size, array.shape[1:], strict=True):
        lo, hi = max(begin, 0), min(begin + length, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - begin, hi - begin))
    out[tuple(dst)] = array[tuple(src)]
    return out


def _padded(image: Image, before: Sequence[int], size: Sequence[int], fill: float) -> Image:
    array = crop_window(image.array, [-b for b in before], size, fill)
    affine = None
    if image.affine is not None:
        shift = np.eye(image.affine.shape[0])
        shift[: len(before), -1] = [-b for b in before]
        affine = image.affine @ shift
    return replace(image, array=array, affine=affine, meta=dict(image.meta))


def pad_to_patch(
    image: Image,
    mask: Image,
    patch_size: int | Sequence[int],
    roi: Image | None = None,
    pad_value: float = 0.0,
) -> tuple[Image, Image, Image | None]:
    """Pad image, mask and ROI, centred, so that every spatial axis holds at least the patch.

    Axes already large enough are left alone (inputs that need no padding come back as they
    are). When the difference is odd the extra voxel goes at the end. The affine is shifted so
    that voxels keep their world position.

    Args:
        image: ``(C, *spatial)`` image.
        mask: ``(K, *spatial)`` label map on the image's grid; padded with label 0.
        patch_size: one size or one per spatial axis (voxels).
        roi: optional region of interest on the image's grid; padded with 0 (outside).
        pad_value: intensity of the padded image voxels (0: the mean after z-scoring).

    Raises:
        InputError: the mask or ROI grid differs from the image's.
    """
    patch = patch_shape(patch_size, image.spatial_dims)
    for other, what in ((mask, "mask"), (roi, "roi")):
        if other is not None and other.spatial_shape != image.spatial_shape:
            raise InputError(
                other.source or f"<{what}>",
                f"{what} grid {list(other.spatial_shape)} differs from the image grid "
                f"{list(image.spatial_shape)}",
            )
    size = [max(n, p) for n, p in zip(image.spatial_shape, patch, strict=True)]
    if list(image.spatial_shape) == size:
        return image, mask, roi
    before = [(s - n) // 2 for s, n in zip(size, image.spatial_shape, strict=True)]
    return (
        _padded(image, before, size, pad_value),
        _padded(mask, before, size, 0),
        None if roi is None else _padded(roi, before, size, 0),
    )
