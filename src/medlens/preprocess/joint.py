"""Transforms applied jointly to an image, its label mask and its region of interest.

Random transforms draw once, from the image; the drawn deterministic twin runs on the image
and its ``for_mask()`` twin (nearest label, label 0 as padding) on the mask and the ROI, so
all three stay on one grid and the mask keeps its integer labels.

Example:
    >>> augment = build_pipeline([{"name": "random_flip"}, {"name": "random_elastic"}])
    >>> image, mask, roi = apply_joint(augment, image, mask, rng=np.random.default_rng(0))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess.base import RandomTransform, Transform

AnyTransform = Transform | RandomTransform

#: Relative tolerance on the voxel spacing (mm) of a mask against its image: a DICOM SEG or a
#: NIfTI label map may restate the image's spacing with rounding.
SPACING_RTOL = 1e-3


def _transforms(pipeline: Iterable[AnyTransform] | AnyTransform) -> list[AnyTransform]:
    if isinstance(pipeline, (Transform, RandomTransform)):
        return [pipeline]
    transforms = list(pipeline)
    for t in transforms:
        if not isinstance(t, (Transform, RandomTransform)):
            raise TypeError(f"apply_joint takes transforms, got {type(t).__name__}")
    return transforms


def _on_image_grid(label_map: Image, image: Image, what: str) -> Image:
    """``label_map`` checked to be an integer map on ``image``'s grid, given the image's
    spacing and affine (so spacing-aware transforms see identical geometry)."""
    where = label_map.source or f"<{what}>"
    if not (np.issubdtype(label_map.array.dtype, np.integer) or label_map.array.dtype == np.bool_):
        raise InputError(
            where,
            f"a {what} must hold integer labels (bool or integer dtype), got "
            f"{label_map.array.dtype}; threshold or cast it first",
        )
    if label_map.spatial_shape != image.spatial_shape:
        raise InputError(
            where,
            f"{what} grid {list(label_map.spatial_shape)} differs from the image grid "
            f"{list(image.spatial_shape)} of {image.source or '<image>'}",
        )
    if not np.allclose(label_map.spacing, image.spacing, rtol=SPACING_RTOL, atol=0.0):
        raise InputError(
            where,
            f"{what} spacing {list(label_map.spacing)} mm differs from the image spacing "
            f"{list(image.spacing)} mm",
        )
    return replace(label_map, spacing=image.spacing, affine=image.affine, meta=dict(label_map.meta))


def _restore_dtype(label_map: Image, dtype: np.dtype) -> Image:
    """Back to the label dtype; order-0 twins only copy labels, so rounding changes nothing."""
    array = label_map.array
    out = array > 0.5 if dtype == np.bool_ else np.rint(array).astype(dtype)
    return replace(label_map, array=out)


def apply_joint(
    pipeline_or_transforms: Iterable[AnyTransform] | AnyTransform,
    image: Image,
    mask: Image,
    roi: Image | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[Image, Image, Image | None]:
    """Run transforms on an image and move its label mask and ROI exactly alike.

    Each random transform draws its twin once, from ``image`` (with the same draws, in the
    same order, as ``pipeline(image, rng)``, so the image comes out identical). Each twin is
    then fixed for the current image (``fixed_for``) and runs on the image; its
    ``for_mask()`` twin, when there is one, runs on the mask and the ROI.

    Args:
        pipeline_or_transforms: a ``Compose``, a list of transforms, or one transform.
        image: ``(C, *spatial)`` image.
        mask: ``(K, *spatial)`` label map (usually ``K = 1``) with a bool or integer dtype, on
            the image's grid (same shape; spacing in mm equal within ``SPACING_RTOL``).
        roi: optional region of interest (bool or integer), on the image's grid too.
        rng: source of the random draws; required when any transform is random.

    Returns:
        ``(image, mask, roi)``: the image as the pipeline makes it, the mask and ROI on its
        grid with their own dtypes and no labels they did not hold (``roi`` None if not given).

    Raises:
        InputError: the mask or ROI is not an integer map on the image's grid.
        ValueError: a random transform and no ``rng``.
        RuntimeError: a transform changed the image grid but has no ``for_mask()`` twin.
    """
    transforms = _transforms(pipeline_or_transforms)
    if rng is None and any(isinstance(t, RandomTransform) for t in transforms):
        names = [t.name for t in transforms if isinstance(t, RandomTransform)]
        raise ValueError(f"pipeline has random transforms ({', '.join(names)}); pass rng")
    dtypes = (mask.array.dtype, None if roi is None else roi.array.dtype)
    mask = _on_image_grid(mask, image, "mask")
    roi = None if roi is None else _on_image_grid(roi, image, "roi")
    for t in transforms:
        twin = t.draw(rng, image) if isinstance(t, RandomTransform) else t  # type: ignore[arg-type]
        twin = twin.fixed_for(image)
        image = twin(image)
        mask_twin = twin.for_mask()
        if mask_twin is not None:
            mask = mask_twin(mask)
            roi = None if roi is None else mask_twin(roi)
        elif mask.spatial_shape != image.spatial_shape:
            raise RuntimeError(
                f"transform {twin.name!r} changed the image grid but has no for_mask() twin "
                "to change the mask's alike"
            )
    mask = _restore_dtype(mask, dtypes[0])
    if roi is not None:
        roi = _restore_dtype(roi, dtypes[1])  # type: ignore[arg-type]
    return image, mask, roi
