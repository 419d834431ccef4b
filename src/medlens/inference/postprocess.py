"""From predicted probabilities to a clean label map: threshold or argmax, then components.

The steps, each off by default (``PostprocessConfig()`` changes nothing beyond the
threshold/argmax): per foreground class, drop connected components smaller than
``min_size_mm`` (an area in mm² in 2D, a volume in mm³ in 3D, from the voxel spacing), keep
the ``keep_largest`` largest components, then fill the holes each class encloses. Components
are connected through faces, edges and corners (8-connectivity in 2D, 26 in 3D); a hole is a
background region that no face-connected path joins to the image border (SciPy's
``binary_fill_holes``), and only background voxels are filled, so another class enclosed by
an organ (a tumour in a liver) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medlens.config import PostprocessConfig
from medlens.errors import ConfigError, InputError

__all__ = ["PostprocessConfig", "postprocess"]

_PROBABILITY_TOLERANCE = 1e-4


def postprocess(
    prediction: Any,
    *,
    threshold: float = 0.5,
    keep_largest: int | None = None,
    fill_holes: bool = False,
    min_size_mm: float = 0.0,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """A label map from one case's probabilities (or label map), cleaned as asked.

    Args:
        prediction: a NumPy array or torch tensor. Floating point: probabilities
            ``(K, *spatial)`` (one case of ``sliding_window_predict``'s output); ``K`` = 1
            or 2 is binary and thresholded, ``K`` > 2 takes the argmax. Integer or boolean:
            a label map ``(*spatial)``, 2D or 3D.
        threshold: the foreground probability at or above which a binary voxel is
            foreground, in (0, 1).
        keep_largest: keep this many largest connected components of each class (None: all).
        fill_holes: fill the background holes each class encloses.
        min_size_mm: remove components smaller than this area (mm², 2D) or volume (mm³, 3D).
        spacing: voxel spacing in mm, one value per spatial axis; needed by ``min_size_mm``.

    Returns:
        The label map ``(*spatial)``, of the smallest unsigned integer dtype that holds it
        (``uint8`` below 256 classes), 0 for background.

    Raises:
        InputError: a prediction that is neither probabilities nor a label map (NaN, values
            outside [0, 1] such as logits, negative labels, wrong number of axes), or bad
            spacing.
        ConfigError: a threshold, ``keep_largest`` or ``min_size_mm`` out of range, or
            ``min_size_mm`` without ``spacing``.

    Example:
        >>> config = PostprocessConfig(keep_largest=1, fill_holes=True)
        >>> probs = np.zeros((2, 8, 8)); probs[0] = 1
        >>> int(postprocess(probs, **config.model_dump(), spacing=(0.8, 0.8)).max())
        0
    """
    _check_options(threshold, keep_largest, min_size_mm, spacing)
    labels = _label_map(prediction, threshold)
    voxel_size = math.prod(_spacing(spacing, labels.ndim)) if spacing is not None else 1.0
    classes = [int(c) for c in np.unique(labels) if c != 0]
    if keep_largest is not None or min_size_mm > 0:
        structure = ndimage.generate_binary_structure(labels.ndim, labels.ndim)
        for label in classes:
            _filter_components(labels, label, structure, keep_largest, min_size_mm, voxel_size)
    if fill_holes:
        for label in classes:
            filled = ndimage.binary_fill_holes(labels == label)
            labels[filled & (labels == 0)] = label
    return labels.astype(np.min_scalar_type(max(int(labels.max(initial=0)), 1)), copy=False)


def _filter_components(
    labels: np.ndarray,
    label: int,
    structure: np.ndarray,
    keep_largest: int | None,
    min_size_mm: float,
    voxel_size: float,
) -> None:
    """Set to 0, in place, the components of ``label`` that are too small or not the largest."""
    mask = labels == label
    components, count = ndimage.label(mask, structure=structure)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]  # voxels per component
    # relative slack: 10 voxels of 0.1 mm² are 1 mm² even where floating point says 0.99999
    keep = sizes * voxel_size >= min_size_mm * (1 - 1e-9)
    if keep_largest is not None:
        ranked = np.argsort(-sizes, kind="stable")  # ties: the first component found wins
        keep[ranked[keep_largest:]] = False
    lookup = np.concatenate([[False], keep])
    labels[mask & ~lookup[components]] = 0


def _label_map(prediction: Any, threshold: float) -> np.ndarray:
    """A writable label map of the smallest unsigned type: thresholded or arg-max
    probabilities, or a copy of the labels given (never int64: a 256^3 volume costs 16 MiB
    as uint8 and 128 MiB as int64)."""
    if hasattr(prediction, "detach"):  # a torch tensor
        prediction = prediction.detach().cpu().numpy()
    array = np.asarray(prediction)
    if array.dtype.kind == "f":
        if array.ndim not in (3, 4):
            raise InputError(
                "prediction",
                f"probabilities must be (K, H, W) or (K, D, H, W), got shape {array.shape}",
            )
        low, high = float(array.min()), float(array.max())
        if np.isnan(low) or np.isnan(high):  # min and max propagate NaN
            raise InputError("prediction", "the probabilities contain NaN values")
        if low < -_PROBABILITY_TOLERANCE or high > 1 + _PROBABILITY_TOLERANCE:
            raise InputError(
                "prediction",
                f"probabilities must lie in [0, 1], got values from {low:.3g} to {high:.3g} "
                "(logits? apply a softmax first)",
            )
        if array.shape[0] <= 2:
            return (array[-1] >= threshold).astype(np.uint8)
        return array.argmax(axis=0).astype(np.min_scalar_type(array.shape[0] - 1))
    if array.dtype.kind not in "biu":
        raise InputError("prediction", f"expected probabilities or labels, got {array.dtype}")
    if array.ndim not in (2, 3):
        raise InputError("prediction", f"a label map must be 2D or 3D, got shape {array.shape}")
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise InputError("prediction", "a label map cannot hold negative labels")
    top = int(array.max(initial=0))
    return array.astype(np.min_scalar_type(max(top, 1)), copy=True)


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise InputError("spacing", f"expected {ndim} values (one per axis), got {len(values)}")
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise InputError("spacing", f"voxel spacing must be finite and positive, got {values}")
    return values


def _check_options(
    threshold: float,
    keep_largest: int | None,
    min_size_mm: float,
    spacing: Sequence[float] | None,
) -> None:
    key = "segmentation.postprocess"
    if not 0 < threshold < 1:
        raise ConfigError(f"{key}.threshold", f"must be in (0, 1), got {threshold}")
    if keep_largest is not None and (
        isinstance(keep_largest, bool) or not isinstance(keep_largest, int) or keep_largest < 1
    ):
        raise ConfigError(
            f"{key}.keep_largest", f"must be a positive integer, got {keep_largest!r}"
        )
    if not min_size_mm >= 0:
        raise ConfigError(f"{key}.min_size_mm", f"must be at least 0, got {min_size_mm}")
    if min_size_mm > 0 and spacing is None:
        raise ConfigError(
            f"{key}.min_size_mm", "needs the voxel spacing (mm) to turn a size in mm into voxels"
        )
