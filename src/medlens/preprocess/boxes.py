"""Transforms applied to an image and its object boxes (and instance masks) together.

Random transforms draw once, from the image; each drawn twin runs on the image, moves points
sampled along every box edge (``Transform.map_points``), and, when there are instance masks,
moves them with its ``for_mask()`` twin. At the end a box is the tight box of its moved
mask, or else of its moved edge points, clipped to the image; an object that left the image
is dropped (``keep`` says which stayed). ``unmap_boxes`` takes boxes predicted on the
preprocessed grid back to the original image through the recorded steps.

Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` in pixel edges (``medlens.data.boxes.records``);
points follow the image's axes, ``(y, x)`` for a 2D image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess.base import RandomTransform, Transform
from medlens.preprocess.joint import AnyTransform, _transforms

#: Points sampled along each box edge, corners included: enough for a smooth elastic field
#: (linear maps need only the corners).
POINTS_PER_EDGE = 5
#: A box whose clipped width or height falls below this (pixels) is dropped.
MIN_SIDE = 1.0
#: A box keeps only when at least this fraction of its moved area stays inside the image: a
#: sliver of a cell at a crop's edge is no example of that cell.
MIN_VISIBLE = 0.25


@dataclass(frozen=True)
class Step:
    """One deterministic transform as it ran, and the grid it ran on (for ``unmap_boxes``)."""

    transform: Transform
    grid: Image


def grid_of(image: Image) -> Image:
    """``image``'s geometry (shape, spacing, affine) without its pixels (a read-only view)."""
    view = np.broadcast_to(np.float32(0), (1, *image.spatial_shape))
    return Image(view, image.spacing, image.affine, image.source)


def box_points(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4 * POINTS_PER_EDGE, 2)`` points ``(y, x)`` along the edges of each box."""
    t = np.linspace(0.0, 1.0, POINTS_PER_EDGE)
    x1, y1, x2, y2 = (np.asarray(boxes, dtype=np.float64)[:, k, None] for k in range(4))
    xs = np.concatenate([x1 + (x2 - x1) * t, x2 + 0 * t, x1 + (x2 - x1) * t, x1 + 0 * t], axis=1)
    ys = np.concatenate([y1 + 0 * t, y1 + (y2 - y1) * t, y2 + 0 * t, y1 + (y2 - y1) * t], axis=1)
    return np.stack([ys, xs], axis=-1)


def points_box(points: np.ndarray) -> np.ndarray:
    """``(N, 4)`` boxes enclosing ``(N, P, 2)`` points ``(y, x)``."""
    return np.stack(
        [
            points[..., 1].min(axis=1),
            points[..., 0].min(axis=1),
            points[..., 1].max(axis=1),
            points[..., 0].max(axis=1),
        ],
        axis=1,
    )


def clip_boxes(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Boxes clipped to an image of ``shape`` (height, width)."""
    height, width = shape
    out = np.array(boxes, dtype=np.float64)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes of ``(N, H, W)`` masks and whether each mask still has a pixel."""
    rows: np.ndarray = np.any(masks, axis=2)
    cols: np.ndarray = np.any(masks, axis=1)
    present: np.ndarray = np.any(rows, axis=1)
    boxes = np.zeros((len(masks), 4))
    for k in np.flatnonzero(present):
        r, c = np.flatnonzero(rows[k]), np.flatnonzero(cols[k])
        boxes[k] = (c[0], r[0], c[-1] + 1, r[-1] + 1)
    return boxes, present


def _check(image: Image, boxes: np.ndarray, masks: np.ndarray | None) -> None:
    where = image.source or "<image>"
    if image.spatial_dims != 2:
        raise InputError(where, f"boxes go with 2D images, not {image.spatial_dims}D ones")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(where, f"boxes must be (N, 4) x1, y1, x2, y2; got {boxes.shape}")
    if masks is not None and masks.shape != (len(boxes), *image.spatial_shape):
        raise InputError(
            where,
            f"instance masks {masks.shape} must be (N, H, W) = ({len(boxes)}, "
            f"{', '.join(map(str, image.spatial_shape))})",
        )


def apply_with_boxes(
    pipeline_or_transforms: Iterable[AnyTransform] | AnyTransform,
    image: Image,
    boxes: np.ndarray,
    masks: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[Image, np.ndarray, np.ndarray, np.ndarray | None]:
    """Run transforms on an image and move its boxes (and instance masks) alike.

    Args:
        pipeline_or_transforms: a ``Compose``, a list of transforms, or one transform.
        image: a 2D ``(C, H, W)`` image.
        boxes: ``(N, 4)`` boxes on it, pixel edges.
        masks: ``(N, H, W)`` boolean instance masks, or None.
        rng: source of the random draws; required when any transform is random.

    Returns:
        ``(image, boxes, keep, masks)``: the image as the pipeline makes it (the same draws as
        ``pipeline(image, rng)``); the ``(M, 4)`` float32 boxes of the objects that stayed
        in it; ``keep``, their ``(M,)`` indices into the input; their masks, or None.

    Raises:
        InputError: a 3D image, boxes not ``(N, 4)``, masks not on the image's grid.
        ValueError: a random transform and no ``rng``.
    """
    out, out_boxes, keep, out_masks, _ = run_with_boxes(
        pipeline_or_transforms, image, boxes, masks, rng
    )
    return out, out_boxes, keep, out_masks


def run_with_boxes(
    pipeline_or_transforms: Iterable[AnyTransform] | AnyTransform,
    image: Image,
    boxes: np.ndarray,
    masks: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[Image, np.ndarray, np.ndarray, np.ndarray | None, list[Step]]:
    """``apply_with_boxes``, and the ``Step`` of every transform as it ran (for
    ``unmap_boxes``): the deterministic preprocessing of a detection run."""
    transforms = _transforms(pipeline_or_transforms)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    _check(image, boxes, masks)
    if rng is None and any(isinstance(t, RandomTransform) for t in transforms):
        names = [t.name for t in transforms if isinstance(t, RandomTransform)]
        raise ValueError(f"pipeline has random transforms ({', '.join(names)}); pass rng")
    n = len(boxes)
    points = box_points(boxes).reshape(-1, 2)
    mask_image = None
    if masks is not None and n:
        mask_image = Image(masks.astype(np.uint8), image.spacing, image.affine, image.source)
    steps = []
    for t in transforms:
        twin = t.draw(rng, image) if isinstance(t, RandomTransform) else t  # type: ignore[arg-type]
        twin = twin.fixed_for(image)
        steps.append(Step(twin, grid_of(image)))
        out = twin(image)
        if n:
            points = twin.map_points(points, image)
            mask_twin = twin.for_mask()
            if mask_image is not None and mask_twin is not None:
                mask_image = mask_twin(mask_image)
        image = out
    if not n:
        empty_masks = None if masks is None else np.zeros((0, *image.spatial_shape), dtype=bool)
        return image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), empty_masks, steps
    moved = points_box(points.reshape(n, -1, 2))
    clipped = clip_boxes(moved, image.spatial_shape)
    visible = _area(clipped) >= MIN_VISIBLE * np.maximum(_area(moved), 1e-12)
    out_masks = None
    if mask_image is not None:
        out_masks = mask_image.array > 0.5
        clipped, present = _mask_boxes(out_masks)
        visible &= present
    sides = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    keep = np.flatnonzero(visible & (sides >= MIN_SIDE))
    kept_masks = None if out_masks is None else out_masks[keep]
    return image, clipped[keep].astype(np.float32), keep.astype(np.int64), kept_masks, steps


def run_with_steps(
    pipeline_or_transforms: Iterable[AnyTransform] | AnyTransform, image: Image
) -> tuple[Image, list[Step]]:
    """Run deterministic transforms and record each step, so ``unmap_boxes`` can take boxes
    found on the output back to ``image``.

    Raises:
        ValueError: a random transform in the pipeline.
    """
    steps = []
    for t in _transforms(pipeline_or_transforms):
        if isinstance(t, RandomTransform):
            raise ValueError(f"{t.name} is random; inference runs deterministic transforms")
        twin = t.fixed_for(image)
        steps.append(Step(twin, grid_of(image)))
        image = twin(image)
    return image, steps


def unmap_boxes(boxes: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Boxes on the grid after ``steps`` taken back to the grid before them (the tight box of
    each box's edge points mapped back), clipped to that image; ``(N, 4)`` float64."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not steps or not len(boxes):
        return boxes.copy()
    points = box_points(boxes).reshape(-1, 2)
    for step in reversed(steps):
        points = step.transform.unmap_points(points, step.grid)
    moved = points_box(points.reshape(len(boxes), -1, 2))
    return clip_boxes(moved, steps[0].grid.spatial_shape)


def map_points_through(points: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Points (voxel edges) of the grid before ``steps`` on the grid after them."""
    out = np.asarray(points, dtype=np.float64)
    for step in steps:
        out = step.transform.map_points(out, step.grid)
    return out
