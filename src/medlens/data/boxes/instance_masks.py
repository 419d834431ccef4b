"""Instance masks as objects: ``images/`` + ``masks/`` with matching file stems.

A mask with more than one non-zero value is an instance label map (each value one object);
a mask with one non-zero value is a binary mask, split into objects by its connected
components (8-connected). ``labels.csv`` (``path,label``: an image's file name or stem and
its class) gives the class of every object of an image; without it every object is of the
one class ``object``.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from medlens.data.boxes.records import AnnotatedObject, ImageRecord, Size
from medlens.data.boxes.rle import mask_box
from medlens.errors import InputError

LABELS_FILE = "labels.csv"
DEFAULT_CLASS = "object"


def is_instance_mask_root(path: Path) -> bool:
    """Whether ``path`` has ``images/`` and ``masks/`` folders."""
    return (path / "images").is_dir() and (path / "masks").is_dir()


def instance_masks(label_map: np.ndarray) -> list[np.ndarray]:
    """The boolean mask of every object of a 2D mask, in order of label value (a label map)
    or of first pixel in reading order (a binary mask, split into connected components)."""
    from skimage.measure import label as connected_components

    values = np.unique(label_map)
    values = values[values != 0]
    if len(values) == 1:
        components = connected_components(label_map != 0, connectivity=2)
        return [components == k for k in range(1, int(components.max()) + 1)]
    return [label_map == v for v in values]


def _labels(root: Path) -> dict[str, str]:
    path = root / LABELS_FILE
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    if rows and not {"path", "label"} <= set(rows[0]):
        raise InputError(path, "needs the columns path and label")
    return {Path(r["path"].strip()).stem: r["label"].strip() for r in rows}


def _mask_of(masks: list[np.ndarray], index: int, size: Size) -> np.ndarray:
    return masks[index]


def read_instance_masks(root: Path) -> list[ImageRecord]:
    """Every image of the layout with its objects (masks read now: their boxes are needed).

    Raises:
        InputError: an image without a mask (or the reverse), a mask that is not 2D or not on
            its image's grid, or an image missing from ``labels.csv`` when there is one.
    """
    from medlens.data.readers import read_image

    images = {p.stem: p for p in sorted((root / "images").iterdir()) if not p.name.startswith(".")}
    masks = {p.stem: p for p in sorted((root / "masks").iterdir()) if not p.name.startswith(".")}
    for stem, path in {**images, **masks}.items():
        if stem not in images or stem not in masks:
            other = "mask in masks/" if stem in images else "image in images/"
            raise InputError(path, f"has no partner {other} (stem {stem!r})")
    labels = _labels(root)
    records = []
    for stem, image in images.items():
        if labels and stem not in labels:
            raise InputError(root / LABELS_FILE, f"has no row for {image.name}")
        mask_image = read_image(masks[stem])
        if mask_image.spatial_dims != 2:
            raise InputError(masks[stem], "an instance mask must be 2D")
        label_map = np.rint(mask_image.array.max(axis=0)).astype(np.int64)
        objects = []
        parts = instance_masks(label_map)
        for k, part in enumerate(parts, start=1):
            box = mask_box(part)
            assert box is not None  # every part holds at least one pixel
            reader = functools.partial(_mask_of, parts, k - 1)
            label = labels.get(stem, DEFAULT_CLASS)
            objects.append(AnnotatedObject(label, box, f"instance {k}", mask=reader))
        size = (int(label_map.shape[0]), int(label_map.shape[1]))
        records.append(ImageRecord(stem, image, masks[stem], tuple(objects), size))
    if not records:
        raise InputError(root / "images", "holds no images")
    return records
