"""The crop stage: a fixed-size crop of each image around what an earlier stage found, with
the box it came from (image pixels), so that what is found in the crop maps back onto the
image's own grid."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.pipeline.config import CropStage
from medlens.pipeline.context import write_png


@dataclass(frozen=True)
class Crop:
    """A crop ``image`` (``(C, *size)``) of the box ``(y0, x0, y1, x1)`` (image pixels, end
    exclusive) of its source image; ``whole_image``: nothing was found, the whole image was
    taken."""

    image: Image
    box: tuple[int, int, int, int]
    whole_image: bool


def region_box(labels: np.ndarray, values: list[int]) -> tuple[float, float, float, float] | None:
    """The bounding box ``(y0, x0, y1, x1)`` (end exclusive) of ``values`` in a label map, or
    None when none of them is present."""
    rows, cols = np.nonzero(np.isin(labels, values))
    if rows.size == 0:
        return None
    return float(rows.min()), float(cols.min()), float(rows.max() + 1), float(cols.max() + 1)


def crop_box(
    box: tuple[float, float, float, float] | None, shape: tuple[int, int], margin: float,
    stage: str, source: str,
) -> tuple[tuple[int, int, int, int], bool]:  # fmt: skip
    """The integer box to crop: ``box`` widened by ``margin`` of its sides, clipped to the
    image; the whole image when ``box`` is None.

    Raises:
        InputError: a box that lies (partly) outside the image, or has no area, naming the stage
            and the image.
    """
    height, width = shape
    if box is None:
        return (0, 0, height, width), True
    y0, x0, y1, x1 = box
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise InputError(
            source,
            f"stage {stage!r}: the box (y0, x0, y1, x1) = ({y0:g}, {x0:g}, {y1:g}, {x1:g}) falls "
            f"outside the {height} x {width} image or has no area",
        )
    dy, dx = margin * (y1 - y0), margin * (x1 - x0)
    out = (
        max(0, int(np.floor(y0 - dy))),
        max(0, int(np.floor(x0 - dx))),
        min(height, int(np.ceil(y1 + dy))),
        min(width, int(np.ceil(x1 + dx))),
    )
    return out, False


def resize(array: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``(C, H, W)`` resized to ``(C, *size)``: bilinear (antialiased when shrinking) for
    intensities, nearest for label maps."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    if nearest:
        out = torch.nn.functional.interpolate(tensor, size=size, mode="nearest-exact")
    else:
        out = torch.nn.functional.interpolate(
            tensor, size=size, mode="bilinear", align_corners=False, antialias=True
        )
    return out[0].numpy()


def make_crop(
    image: Image, box: tuple[float, float, float, float] | None, stage: CropStage
) -> Crop:
    """The stage's crop of ``image`` around ``box``."""
    shape = (int(image.array.shape[1]), int(image.array.shape[2]))
    (y0, x0, y1, x1), whole = crop_box(box, shape, stage.margin, stage.name, image.source)
    size = (int(stage.size[0]), int(stage.size[1]))
    region = image.array[:, y0:y1, x0:x1]
    pixels = resize(region, size)
    if region.min() >= 0 and region.max() <= 255 and np.array_equal(region, np.round(region)):
        pixels = np.rint(pixels)  # an 8-bit image's crop stays 8-bit, as its PNG on disk
    meta = {**image.meta, "crop_box": [y0, x0, y1, x1]}
    crop = Image(pixels.astype(np.float32), (1.0, 1.0), source=image.source, meta=meta)
    return Crop(crop, (y0, x0, y1, x1), whole)


def crop_labels(labels: np.ndarray, crop: Crop, size: tuple[int, int]) -> np.ndarray:
    """A label map ``(H, W)`` of the source image cut to ``crop``'s box and resized (nearest)."""
    y0, x0, y1, x1 = crop.box
    return resize(labels[None, y0:y1, x0:x1], size, nearest=True)[0].astype(np.uint8)


def paste_labels(crop_map: np.ndarray, crop: Crop, shape: tuple[int, int]) -> np.ndarray:
    """A label map found on a crop, mapped back onto its source image's grid (nearest);
    0 outside the crop's box."""
    y0, x0, y1, x1 = crop.box
    out = np.zeros(shape, dtype=np.uint8)
    out[y0:y1, x0:x1] = resize(crop_map[None], (y1 - y0, x1 - x0), nearest=True)[0]
    return out


def save_crops(folder: Path, crops: dict[str, Crop]) -> None:
    """Each crop as ``<folder>/crops/<case>.png`` (8-bit images), and ``<folder>/boxes.csv``:
    each crop's box on its image (pixels, end exclusive) and whether it is the whole image.
    Rows of cases already in ``boxes.csv`` are replaced."""
    import csv
    import io

    from medlens.io_utils import write_atomic

    rows: dict[str, list[str]] = {}
    table = folder / "boxes.csv"
    if table.is_file():
        with open(table, newline="", encoding="utf-8") as handle:
            rows = {r[0]: r for r in list(csv.reader(handle))[1:]}
    for cid, crop in crops.items():
        # crops of images beyond 8 bits are not written as PNG (boxes.csv still lists them)
        with contextlib.suppress(InputError):
            write_png(crop.image.array, folder / "crops" / f"{cid}.png")
        rows[cid] = [cid, *map(str, crop.box), str(crop.whole_image).lower()]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case_id", "y0", "x0", "y1", "x1", "whole_image"])
    writer.writerows(rows[k] for k in sorted(rows))
    write_atomic(table, buffer.getvalue())
