"""The region of interest (ROI) every handcrafted feature is computed on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medlens.data.image import Image
from medlens.data.validation import require_finite
from medlens.errors import InputError


@dataclass(frozen=True)
class RegionOfInterest:
    """One channel of an image and its ROI mask, cropped to the mask's bounding box.

    Attributes:
        intensities: float64 spatial array ``(H, W)`` or ``(D, H, W)``, the image's own units
            (HU for CT, 0..255 for 8-bit images).
        mask: bool array of the same shape; True inside the ROI.
        spacing: voxel size along each spatial axis, in mm.
        source: the image's file, for error messages.
    """

    intensities: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, ...]
    source: str

    @property
    def spatial_dims(self) -> int:
        return self.mask.ndim

    @property
    def values(self) -> np.ndarray:
        """The intensities of the ROI's voxels, 1D."""
        return self.intensities[self.mask]

    @property
    def voxel_volume(self) -> float:
        """Area (mm²) of a pixel in 2D, volume (mm³) of a voxel in 3D."""
        return float(np.prod(self.spacing))


def region_of_interest(
    image: Image, mask: np.ndarray | Image | None = None, channel: int | None = None
) -> RegionOfInterest:
    """Check ``image`` and ``mask`` and cut out the ROI.

    Args:
        image: a 2D ``(C, H, W)`` or 3D ``(C, D, H, W)`` image with its spacing in mm.
        mask: the ROI, nonzero inside, of the image's spatial shape (a leading axis of size 1
            is accepted); ``None`` takes the whole image.
        channel: the channel to describe; may be left out for single-channel images.

    Raises:
        InputError: naming the image's source when the image holds NaN/inf, is neither 2D nor
            3D, has a non-positive spacing, several channels and no ``channel``, or when the
            mask's shape differs from the image's or the mask is empty.
    """
    source = image.source or "<image>"
    if image.spatial_dims not in (2, 3):
        raise InputError(
            source, f"handcrafted features need a 2D or 3D image, got {image.spatial_dims}D"
        )
    spacing = tuple(float(s) for s in image.spacing)
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InputError(source, f"spacing {spacing} mm must be positive and finite")
    if channel is None:
        if image.num_channels != 1:
            raise InputError(
                source, f"has {image.num_channels} channels; pass channel= to choose one"
            )
        channel = 0
    if not 0 <= channel < image.num_channels:
        raise InputError(source, f"channel {channel} out of range (0..{image.num_channels - 1})")
    require_finite(np.asarray(image.array), source)
    intensities = np.asarray(image.array[channel], dtype=np.float64)
    roi_mask = _as_mask(mask, intensities.shape, source)
    if not roi_mask.any():
        raise InputError(source, "the region of interest (mask) is empty")
    box = tuple(slice(idx.min(), idx.max() + 1) for idx in np.nonzero(roi_mask))
    return RegionOfInterest(intensities[box], roi_mask[box], spacing, source)


def _as_mask(mask: np.ndarray | Image | None, shape: tuple[int, ...], source: str) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    where = (mask.source or source) if isinstance(mask, Image) else source
    values = np.asarray(mask.array if isinstance(mask, Image) else mask)
    if values.ndim == len(shape) + 1 and values.shape[0] == 1:
        values = values[0]
    if values.shape != shape:
        raise InputError(where, f"mask shape {values.shape} differs from the image's {shape}")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise InputError(where, f"mask holds {values.dtype} values, not numbers")
    require_finite(values, where, "mask values")
    return np.asarray(values != 0)
