"""Handcrafted (radiomics-style) features of an image and an optional ROI mask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlens.data.image import Image
from medlens.errors import ConfigError
from medlens.features.first_order import first_order_features
from medlens.features.glrlm import glrlm_features
from medlens.features.glszm import glszm_features
from medlens.features.quantize import quantize
from medlens.features.roi import region_of_interest
from medlens.features.shape import shape_features
from medlens.features.texture import glcm_features

FAMILIES = ("firstorder", "shape", "glcm", "glrlm", "glszm")


def handcrafted_features(
    image: Image,
    mask: np.ndarray | Image | None = None,
    bins: int = 32,
    bin_width: float | None = None,
    distances: Sequence[int] = (1,),
    channel: int | None = None,
    families: Sequence[str] = FAMILIES,
) -> dict[str, float]:
    """Radiomics-style features of one image channel inside a region of interest.

    Shape features are in mm, mm², mm³ from ``image.spacing``; first-order features in the
    image's own intensity units; texture features (GLCM, GLRLM, GLSZM) are counted in voxel
    steps on the gray levels of ``quantize`` (``bins`` equal bins over the ROI's range by
    default, or ``bin_width`` intensity units), so anisotropic volumes are best resampled to
    isotropic voxels first. docs/features.md maps each name to pyradiomics and IBSI.

    Args:
        image: a 2D ``(C, H, W)`` or 3D ``(C, D, H, W)`` image.
        mask: the ROI (nonzero inside) of the image's spatial shape; None: the whole image
            (shape features then describe the image frame).
        bins: gray levels for the fixed-bin-count discretisation.
        bin_width: fixed bin width in intensity units (e.g. 25 HU); overrides ``bins``.
        distances: GLCM neighbour distances in voxels.
        channel: the channel to describe (required when the image has several).
        families: which of ``firstorder``, ``shape``, ``glcm``, ``glrlm``, ``glszm``.

    Returns:
        ``{name: value}`` in a fixed order for a given dimensionality and families
        (``firstorder_mean``, ``shape_volume_mm3``, ``glcm_contrast``, ...).

    Raises:
        InputError: NaN/inf in the image, an empty or mis-shaped mask, a multi-channel image
            without ``channel``, or an ROI too small for the GLCM (no neighbouring voxels).
        ConfigError: an unknown family or a bad ``bins``/``bin_width``/``distances``.

    Example:
        >>> features = handcrafted_features(ct_image, mask=liver_mask, bin_width=25)
        >>> features["shape_volume_mm3"], features["firstorder_mean"]  # mm³, HU
    """
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ConfigError(
            "features.families", f"unknown {unknown}; choose from {', '.join(FAMILIES)}"
        )
    roi = region_of_interest(image, mask, channel)
    levels, n_levels = quantize(roi, bins=bins, bin_width=bin_width)
    out: dict[str, float] = {}
    if "firstorder" in families:
        out.update(first_order_features(roi, levels, n_levels))
    if "shape" in families:
        out.update(shape_features(roi))
    if "glcm" in families:
        out.update(glcm_features(levels, n_levels, tuple(int(d) for d in distances), roi.source))
    if "glrlm" in families:
        out.update(glrlm_features(levels, n_levels))
    if "glszm" in families:
        out.update(glszm_features(levels, n_levels))
    return out
