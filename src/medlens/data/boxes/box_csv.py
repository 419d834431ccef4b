"""A CSV table of boxes: one row per object, ``path, x1, y1, x2, y2, label`` (pixel-edge
coordinates, see ``records``), optionally ``split`` (train/val/test) and ``crowd`` (0/1).

An image without objects is one row with empty coordinates and label: it still counts (any
detection on it is a false positive). Paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from medlens.data.boxes.records import AnnotatedObject, ImageRecord
from medlens.errors import InputError

COORDINATES = ("x1", "y1", "x2", "y2")
SPLITS = ("train", "val", "test")


def _coordinate(text: str | None) -> float:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan
    return value


def read_box_csv(
    path: Path, path_column: str = "path", label_column: str = "label"
) -> list[ImageRecord]:
    """Every image of a box table, in order of first appearance, with its objects.

    Raises:
        InputError: an unreadable file, a missing column, a row without a path, an unknown
            split, two splits for one image, or an image that does not exist.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            columns = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    if not rows:
        raise InputError(path, "holds no rows")
    missing = [c for c in (path_column, *COORDINATES, label_column) if c not in columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}")
    objects: dict[str, list[AnnotatedObject]] = {}
    splits: dict[str, str | None] = {}
    for line, row in enumerate(rows, start=2):
        name = (row.get(path_column) or "").strip()
        if not name:
            raise InputError(path, f"row {line} has no {path_column}")
        split = (row.get("split") or "").strip() or None
        if split is not None and split not in SPLITS:
            raise InputError(path, f"row {line}: split {split!r} is not train, val or test")
        if splits.setdefault(name, split) != split:
            raise InputError(path, f"row {line}: {name} is in split {splits[name]} elsewhere")
        entries = objects.setdefault(name, [])
        label = (row.get(label_column) or "").strip()
        values = [(row.get(c) or "").strip() for c in COORDINATES]
        if not label and not any(values):
            continue  # an image without objects
        box = tuple(_coordinate(v) for v in values)
        crowd = (row.get("crowd") or "0").strip() in ("1", "true", "True")
        entries.append(AnnotatedObject(label, box, f"row {line}", crowd=crowd))  # type: ignore[arg-type]
    records = []
    for name, entries in objects.items():
        image = (path.parent / name) if not Path(name).is_absolute() else Path(name)
        if not image.is_file():
            raise InputError(path, f"refers to image {image}, which does not exist")
        records.append(
            ImageRecord(
                case_id=Path(name).with_suffix("").as_posix(),
                image=image,
                annotation=path,
                objects=tuple(entries),
                split=splits[name],
            )
        )
    return records
