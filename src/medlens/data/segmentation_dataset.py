"""``SegmentationDataset``: patches of preprocessed cases with their masks, jointly augmented.

Crop, then augment. Each item cuts a region somewhat larger than its patch (``context``
times the patch, centred on it), augments image, mask and ROI together, and keeps the
central patch. Augmenting whole images would cost a full-volume warp per patch (a CT volume
is hundreds of times a patch); cropping exactly the patch first would let a rotation bring
padding into the patch's corners. With the default context, the patch's diagonal fits
inside the region, so any rotation fills the patch with real voxels (nnU-Net and
batchgenerators do the same). The ROI travels with the image: voxels that augmentation brings
in from beyond the image, or that ``pad_to_patch`` added, are outside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from medlens.data.image import Image
from medlens.data.patches import (
    FOREGROUND_FRACTION,
    MAX_LOCATIONS_PER_LABEL,
    PatchSlices,
    VoxelLocations,
    crop_window,
    pad_to_patch,
    patch_shape,
    sample_patches,
    voxel_locations,
)
from medlens.data.validation import require_finite
from medlens.errors import ConfigError, InputError

SegmentationCase = tuple[Image, Image, Image | None]

#: Extra stream key of the per-(seed, epoch, case) generator that plans a case's patches, so
#: it never coincides with the per-(seed, epoch, index) generator of an item's augmentation.
_PATCH_STREAM = 1


class JointAugmentation(Protocol):
    """A random pipeline that moves a mask and ROI with the image (``Compose`` is one)."""

    def apply_joint(
        self, image: Image, mask: Image, roi: Image | None, rng: np.random.Generator
    ) -> tuple[Image, Image, Image | None]: ...


def _check_case(i: int, case: SegmentationCase) -> tuple[Image, Image, Image]:
    """The case with its ROI as a bool map (all True when it has none), after checking it."""
    try:
        image, mask, roi = case
    except (TypeError, ValueError):
        raise TypeError(f"case {i} must be an (image, mask, roi) triple") from None
    where = image.source or f"case {i}"
    require_finite(image.array, where)
    for other, what in ((mask, "mask"), (roi, "roi")):
        if other is None:
            continue
        if other.num_channels != 1:
            raise InputError(
                other.source or where, f"{what} has {other.num_channels} channels, not 1"
            )
        if not (np.issubdtype(other.array.dtype, np.integer) or other.array.dtype == bool):
            raise InputError(
                other.source or where,
                f"{what} holds {other.array.dtype} values; it must be a bool or integer map",
            )
        if other.spatial_shape != image.spatial_shape:
            raise InputError(
                other.source or where,
                f"{what} grid {list(other.spatial_shape)} differs from the image grid "
                f"{list(image.spatial_shape)}",
            )
    if roi is None:
        roi_map = mask.with_array(np.ones((1, *image.spatial_shape), dtype=bool))
    else:
        roi_map = replace(roi, array=np.asarray(roi.array != 0), meta=dict(roi.meta))
    return image, mask, roi_map


class SegmentationDataset(Dataset):
    """Items ``{"image", "mask", "roi", "case_index"}`` from preprocessed cases.

    ``image`` is a float32 tensor ``(C, *patch)``, ``mask`` int64 ``(1, *patch)``, ``roi``
    bool ``(1, *patch)`` (True inside the case's ROI; the whole image when it has none) and
    ``case_index`` the position of the case in ``cases``. Item ``i`` is patch
    ``i % patches_per_image`` of case ``i // patches_per_image``.

    Randomness mirrors ``CaseDataset``: the patches of case ``c`` in epoch ``e`` are planned
    by ``np.random.default_rng([seed, e, c, 1])`` (so the foreground share holds per case and
    epoch), and item ``i`` is augmented with ``np.random.default_rng([seed, e, i])``; items
    depend on neither the worker count nor the order they are drawn in. Call ``set_epoch``
    before each epoch.

    Args:
        cases: ``(image, mask, roi)`` triples already preprocessed on one grid (the mask an
            integer label map with one channel, the ROI bool/integer or None).
        augment: random transforms applied jointly (a ``Compose``, or anything with an
            ``apply_joint(image, mask, roi, rng)`` method); None for no augmentation.
            They should keep the grid; whatever they return is centre-cropped to the patch.
        patch_size: one size or one per spatial axis (voxels); None gives whole images.
        patches_per_image: items per case per epoch.
        foreground_fraction: share of patches centred on foreground (see ``sample_patches``).
        seed: base seed of every random draw.
        context: side of the region augmented around a patch, relative to the patch;
            None: sqrt(spatial dims) (room for any rotation); 1 when there is no ``augment``.
        pad_value: intensity of image voxels padded in from outside the image (0: the mean
            after z-scoring).

    Raises:
        InputError: a case with non-finite intensities, a mask that is not a one-channel
            integer map, or a mask/ROI on another grid than its image.
        ConfigError: a bad ``patch_size``, ``patches_per_image``, ``foreground_fraction``,
            ``seed`` or ``context``.
    """

    def __init__(
        self,
        cases: Sequence[SegmentationCase],
        augment: JointAugmentation | None = None,
        patch_size: int | Sequence[int] | None = None,
        patches_per_image: int = 1,
        foreground_fraction: float = FOREGROUND_FRACTION,
        seed: int = 0,
        context: float | None = None,
        pad_value: float = 0.0,
    ) -> None:
        if not cases:
            raise ConfigError("cases", "the segmentation dataset needs at least one case")
        if augment is not None and not callable(getattr(augment, "apply_joint", None)):
            raise TypeError(
                f"augment must have an apply_joint method (a Compose), got {type(augment)}"
            )
        if not isinstance(patches_per_image, int) or patches_per_image < 1:
            raise ConfigError("patches_per_image", f"must be >= 1, got {patches_per_image!r}")
        if not 0.0 <= float(foreground_fraction) <= 1.0:
            raise ConfigError(
                "foreground_fraction", f"must lie in [0, 1], got {foreground_fraction!r}"
            )
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError("seed", f"must be a whole number >= 0, got {seed!r}")
        checked = [_check_case(i, case) for i, case in enumerate(cases)]
        ndim = checked[0][0].spatial_dims
        if any(image.spatial_dims != ndim for image, _, _ in checked):
            raise InputError(checked[0][0].source or "case 0", "cases mix 2D and 3D images")
        self.augment = augment
        self.patch = None if patch_size is None else patch_shape(patch_size, ndim)
        self.patches_per_image = patches_per_image
        self.foreground_fraction = float(foreground_fraction)
        self.seed = seed
        self.epoch = 0
        if context is None:
            context = math.sqrt(ndim) if augment is not None else 1.0
        if not context >= 1.0:
            raise ConfigError("context", f"must be >= 1 (relative to the patch), got {context!r}")
        self.context = float(context)
        self.pad_value = float(pad_value)
        self._sampling_roi = [case[2] is not None for case in cases]
        if self.patch is not None:
            checked = [pad_to_patch(im, m, self.patch, r, pad_value) for im, m, r in checked]  # type: ignore[misc]
        self.cases: list[tuple[Image, Image, Image]] = checked
        self._locations: list[VoxelLocations] = []
        if self.patch is not None:
            self._locations = [
                voxel_locations(
                    mask.array[0],
                    roi.array[0] if has_roi else None,
                    max_per_label=MAX_LOCATIONS_PER_LABEL,
                    source=mask.source or image.source or f"case {i}",
                )
                for i, ((image, mask, roi), has_roi) in enumerate(
                    zip(self.cases, self._sampling_roi, strict=True)
                )
            ]

    def set_epoch(self, epoch: int) -> None:
        """Select the patches and augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cases) * self.patches_per_image

    def patch_plan(self, case_index: int) -> list[PatchSlices]:
        """The patches (slices per spatial axis) of a case in the current epoch, in item
        order, on the case's grid after padding to the patch size."""
        if self.patch is None:
            image = self.cases[case_index][0]
            return [tuple(slice(0, n) for n in image.spatial_shape)] * self.patches_per_image
        rng = np.random.default_rng([self.seed, self.epoch, case_index, _PATCH_STREAM])
        return sample_patches(
            self.cases[case_index][1].array[0],
            self.patch,
            self.patches_per_image,
            self.foreground_fraction,
            rng,
            locations=self._locations[case_index],
        )

    def _region(self, case_index: int, patch: PatchSlices) -> tuple[Image, Image, Image]:
        """The region around ``patch`` that augmentation works on (padded outside the image)."""
        image, mask, roi = self.cases[case_index]
        size = [s.stop - s.start for s in patch]
        if self.augment is not None and self.patch is not None:
            margin = [math.ceil(n * (self.context - 1) / 2) for n in size]
        else:
            margin = [0] * len(size)
        start = [s.start - m for s, m in zip(patch, margin, strict=True)]
        size = [n + 2 * m for n, m in zip(size, margin, strict=True)]
        return tuple(  # type: ignore[return-value]
            replace(part, array=crop_window(part.array, start, size, fill), affine=None, meta={})
            for part, fill in ((image, self.pad_value), (mask, 0), (roi, False))
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} of a dataset of {len(self)}")
        index = int(index) % len(self)
        case_index, k = divmod(index, self.patches_per_image)
        image, mask, roi = self._region(case_index, self.patch_plan(case_index)[k])
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask, roi = self.augment.apply_joint(image, mask, roi, rng)  # type: ignore[assignment]
        arrays = [image.array, mask.array, roi.array]
        if self.patch is not None and image.spatial_shape != self.patch:
            start = [(n - p) // 2 for n, p in zip(image.spatial_shape, self.patch, strict=True)]
            arrays = [
                crop_window(a, start, self.patch, fill)
                for a, fill in zip(arrays, (self.pad_value, 0, False), strict=True)
            ]
        require_finite(arrays[0], image.source or f"case {case_index}", "values after augmentation")
        return {
            "image": torch.from_numpy(np.ascontiguousarray(arrays[0], dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(arrays[1], dtype=np.int64)),
            "roi": torch.from_numpy(np.ascontiguousarray(arrays[2], dtype=bool)),
            "case_index": case_index,
        }
