"""Boxes drawn on an image, as RGB pixels: the overlays of ``medlens predict`` and of the
detection report. Drawn with Pillow (no figure machinery), one colour per class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Okabe-Ito colours (colour-blind safe), one per class index, cycling.
CLASS_COLOURS = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
)
REFERENCE_COLOUR = (255, 255, 255)


def display_rgb(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` intensities -> ``(H, W, 3)`` uint8: three channels as colour, else the
    first in grey; each channel stretched between its 1st and 99th percentile."""
    channels = array if array.shape[0] == 3 else array[:1]
    out = np.empty(channels.shape, dtype=np.float32)
    for c, channel in enumerate(np.asarray(channels, dtype=np.float32)):
        low, high = (float(v) for v in np.percentile(channel, (1, 99)))
        scale = high - low or 1.0
        out[c] = np.clip((channel - low) / scale, 0.0, 1.0)
    if len(out) == 1:
        out = np.repeat(out, 3, axis=0)
    return (np.moveaxis(out, 0, -1) * 255).round().astype(np.uint8)


def render_boxes(
    array: np.ndarray,
    boxes: np.ndarray,
    captions: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """The image with boxes drawn: ``(H, W, 3)`` uint8.

    Args:
        array: ``(C, H, W)`` image.
        boxes: ``(N, 4)`` x1, y1, x2, y2 in pixel edges.
        captions: one text per box (class and score), drawn above it.
        labels: class index per box (its colour).
        reference: ``(G, 4)`` reference boxes, drawn thin in white beneath, or None.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    canvas = PILImage.fromarray(display_rgb(array))
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 320))
    for box in [] if reference is None else reference:
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=REFERENCE_COLOUR, width=1)
    for box, caption, label in zip(boxes, captions, labels, strict=True):
        colour = CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=colour, width=width)
        draw.text((float(box[0]) + 2, max(float(box[1]) - 11, 0.0)), caption, fill=colour)
    return np.asarray(canvas)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write ``(H, W, 3)`` uint8 as a PNG, atomically (the folder is created)."""
    import io

    from PIL import Image as PILImage

    from medlens.io_utils import write_atomic

    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())
