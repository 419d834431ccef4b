"""Overlay figures of one segmented case: the reference and predicted contours on the image, and
a map of the false-positive and false-negative pixels.

2D images get two panels side by side. Volumes get the three orthogonal slices through the
reference's centre of mass (the middle of the volume when the reference is empty): contours on
the top row, errors on the bottom row. Pixels are drawn with their physical aspect ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import ndimage

from medlens.errors import InputError
from medlens.report.plots import new_figure, save_figure

#: Colour-blind-safe pairs (Okabe-Ito): reference vs prediction, missed vs extra pixels.
REFERENCE_COLOUR = "#56B4E9"  # sky blue
PREDICTION_COLOUR = "#E69F00"  # orange
TRUE_POSITIVE_COLOUR = "#F0F0F0"  # near white
FALSE_POSITIVE_COLOUR = "#E69F00"  # orange: predicted, not in the reference
FALSE_NEGATIVE_COLOUR = "#0072B2"  # blue: in the reference, missed
WRONG_CLASS_COLOUR = "#CC79A7"  # purple: foreground in both, different class
ERROR_COLOURS = {
    "true positive": TRUE_POSITIVE_COLOUR,
    "false positive": FALSE_POSITIVE_COLOUR,
    "false negative": FALSE_NEGATIVE_COLOUR,
    "wrong class": WRONG_CLASS_COLOUR,
}
#: The image is dimmed under the error map so the coloured pixels stand out.
ERROR_MAP_DIMMING = 0.45


def display_image(image: np.ndarray) -> np.ndarray:
    """``(C, *spatial)`` intensities -> ``(*spatial, 3)`` RGB in [0, 1] for display.

    Three channels are shown as colour, any other count by the first channel in grey; each
    channel is stretched between its 1st and 99th percentile.
    """
    channels = image if image.shape[0] == 3 else image[:1]
    out = np.empty(channels.shape, dtype=np.float32)
    for c, channel in enumerate(channels.astype(np.float32)):
        finite = channel[np.isfinite(channel)]
        low, high = 0.0, 1.0
        if finite.size:
            low, high = (float(v) for v in np.percentile(finite, (1, 99)))
        scale = high - low if high > low else 1.0
        out[c] = np.clip((np.nan_to_num(channel, nan=low) - low) / scale, 0.0, 1.0)
    rgb = np.moveaxis(out, 0, -1)
    return np.repeat(rgb, 3, axis=-1) if len(out) == 1 else rgb


def slice_centre(reference: np.ndarray) -> tuple[int, ...]:
    """The voxel nearest the centre of mass of the reference's foreground (the middle when
    the reference is empty)."""
    foreground = reference > 0
    if not foreground.any():
        return tuple(s // 2 for s in reference.shape)
    centre = ndimage.center_of_mass(foreground)
    return tuple(int(round(c)) for c in centre)


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype=np.float32)


def error_counts(reference: np.ndarray, prediction: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean maps of agreement and of the errors of a predicted label map.

    Returns:
        ``{"true positive", "false positive", "false negative", "wrong class"}``: foreground in
        both with the same class; predicted foreground on reference background; reference
        foreground predicted as background; foreground in both with different classes.
    """
    ref, pred = reference > 0, prediction > 0
    return {
        "true positive": ref & pred & (reference == prediction),
        "false positive": pred & ~ref,
        "false negative": ref & ~pred,
        "wrong class": ref & pred & (reference != prediction),
    }


def _error_rgb(rgb: np.ndarray, maps: dict[str, np.ndarray]) -> np.ndarray:
    out = rgb * ERROR_MAP_DIMMING
    for kind, where in maps.items():
        out[where] = _hex_rgb(ERROR_COLOURS[kind])
    return out


def _contours(ax: Axes, labels: np.ndarray, colour: str, style: str) -> None:
    for label in np.unique(labels):
        region = labels == label
        if label == 0 or region.all():
            continue
        ax.contour(
            region.astype(np.float32), levels=[0.5], colors=colour, linewidths=0.8, linestyles=style
        )


def _panel(ax: Axes, rgb: np.ndarray, aspect: float, title: str) -> None:
    ax.imshow(rgb, aspect=aspect, interpolation="nearest")
    ax.set_title(title, fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])


def _views(
    shape: Sequence[int], spacing: Sequence[float], centre: Sequence[int]
) -> list[tuple[tuple[slice | int, ...], float, str]]:
    """(index, pixel aspect, name) of the planes to draw: the image itself, or three slices."""
    if len(shape) == 2:
        return [((slice(None), slice(None)), spacing[0] / spacing[1], "")]
    views = []
    for axis in range(3):
        index: list[slice | int] = [slice(None)] * 3
        index[axis] = centre[axis]
        rows, cols = [a for a in range(3) if a != axis]
        views.append((tuple(index), spacing[rows] / spacing[cols], f"axis {axis} = {centre[axis]}"))
    return views


def _check_shapes(image: np.ndarray, reference: np.ndarray, prediction: np.ndarray) -> None:
    if reference.shape != prediction.shape or image.shape[1:] != reference.shape:
        raise InputError(
            "overlay",
            f"image {image.shape[1:]}, reference {reference.shape} and prediction "
            f"{prediction.shape} must share one spatial grid",
        )
    if reference.ndim not in (2, 3):
        raise InputError(
            "overlay", f"overlays are drawn for 2D or 3D images, not {reference.ndim}D"
        )


def plot_segmentation_overlay(
    image: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    path: str | Path,
    spacing: Sequence[float] | None = None,
    title: str | None = None,
) -> Path:
    """Draw the contour overlay and the error map of one case and write them as one PNG.

    Args:
        image: ``(C, *spatial)`` intensities (2D or 3D); three channels are shown as RGB.
        reference: ``(*spatial)`` reference label map (0 = background).
        prediction: ``(*spatial)`` predicted label map on the same grid.
        path: the PNG to write (atomically).
        spacing: voxel size in mm per spatial axis (sets the displayed aspect ratio).
        title: figure title, e.g. the case id and its Dice.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: the three arrays are not on one grid, or not 2D/3D.
    """
    reference, prediction = np.asarray(reference), np.asarray(prediction)
    image = np.asarray(image)
    _check_shapes(image, reference, prediction)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * reference.ndim
    rgb = display_image(image)
    maps = error_counts(reference, prediction)
    views = _views(reference.shape, spacing, slice_centre(reference))
    three_d = len(views) == 3
    fig, axes = new_figure(
        11.0 if three_d else 10.0,
        7.4 if three_d else 5.6,
        nrows=2 if three_d else 1,
        ncols=3 if three_d else 2,
        squeeze=False,
    )
    for v, (index, aspect, name) in enumerate(views):
        top, bottom = (axes[0, v], axes[1, v]) if three_d else (axes[0, 0], axes[0, 1])
        _panel(top, rgb[index], aspect, f"contours {name}".strip())
        _contours(top, reference[index], REFERENCE_COLOUR, "solid")
        _contours(top, prediction[index], PREDICTION_COLOUR, "dashed")
        _panel(
            bottom,
            _error_rgb(rgb[index], {k: m[index] for k, m in maps.items()}),
            aspect,
            f"errors {name}".strip(),
        )
    contour_legend = [
        Line2D([], [], color=REFERENCE_COLOUR, linestyle="solid", label="reference"),
        Line2D([], [], color=PREDICTION_COLOUR, linestyle="dashed", label="prediction"),
    ]
    unit = "voxels in the volume" if three_d else "pixels"
    error_legend = [
        Patch(
            facecolor=ERROR_COLOURS[kind], edgecolor="0.3", label=f"{kind} ({int(m.sum())} {unit})"
        )
        for kind, m in maps.items()
        if kind != "wrong class" or m.any()
    ]
    fig.legend(
        handles=contour_legend + error_legend, loc="outside lower center", ncols=3, fontsize="small"
    )
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
