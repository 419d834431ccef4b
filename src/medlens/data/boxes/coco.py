"""COCO JSON: ``images``, ``categories`` and ``annotations`` (``bbox`` as ``[x, y, w, h]`` in
pixel-edge coordinates, ``iscrowd``, ``segmentation`` as polygons or RLE).

``data.path`` is one JSON file (no official split), or a folder holding ``train.json``,
``val.json`` and/or ``test.json`` (the official split) or a single ``annotations.json``. An
image's ``file_name`` is looked up beside the JSON, then in its ``images/`` sub-folder.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from medlens.data.boxes.records import AnnotatedObject, ImageRecord, Size
from medlens.data.boxes.rle import decode_rle, polygons_to_mask
from medlens.errors import InputError

SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}
SINGLE_FILE = "annotations.json"


def is_coco_path(path: Path) -> bool:
    """A ``.json`` file, or a folder with COCO files named as this module expects."""
    if path.is_file():
        return path.suffix.lower() == ".json"
    return path.is_dir() and any(
        (path / name).is_file() for name in (*SPLIT_FILES.values(), SINGLE_FILE)
    )


def coco_files(path: Path) -> list[tuple[Path, str | None]]:
    """``(json file, split)`` pairs of a COCO ``data.path``."""
    if path.is_file():
        return [(path, None)]
    split_files: list[tuple[Path, str | None]] = [
        (path / f, s) for s, f in SPLIT_FILES.items() if (path / f).is_file()
    ]
    if split_files:
        return split_files
    if (path / SINGLE_FILE).is_file():
        return [(path / SINGLE_FILE, None)]
    raise InputError(path, f"holds neither {', '.join(SPLIT_FILES.values())} nor {SINGLE_FILE}")


def _load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON file ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise InputError(path, "not a COCO file: no 'images' list")
    for key in ("annotations", "categories"):
        if not isinstance(document.get(key, []), list):
            raise InputError(path, f"'{key}' must be a list")
    return document


def coco_categories(path: Path) -> list[str]:
    """Category names of one COCO file, in id order."""
    document = _load(path)
    return [str(c.get("name")) for c in sorted(document.get("categories", []), key=_id)]


def _id(entry: Any) -> Any:
    return entry.get("id") if isinstance(entry, dict) else None


def _image_file(path: Path, file_name: str) -> Path:
    for candidate in (path.parent / file_name, path.parent / "images" / file_name):
        if candidate.is_file():
            return candidate
    raise InputError(path, f"refers to image {path.parent / file_name}, which does not exist")


def _mask_reader(segmentation: Any, where: str) -> Any:
    """A function of the image size giving the mask of a COCO ``segmentation``; None when
    the annotation has none."""
    if isinstance(segmentation, dict):
        return functools.partial(_rle_mask, segmentation, where)
    if isinstance(segmentation, list) and segmentation:
        return functools.partial(_polygon_mask, segmentation, where)
    return None


def _rle_mask(rle: dict[str, Any], where: str, size: Size) -> np.ndarray:
    mask = decode_rle(rle, where)
    if mask.shape != tuple(size):
        raise InputError(where, f"RLE of size {list(mask.shape)} on an image of {list(size)}")
    return mask


def _polygon_mask(polygons: list[Any], where: str, size: Size) -> np.ndarray:
    try:
        return polygons_to_mask(polygons, size)
    except (TypeError, ValueError) as exc:
        raise InputError(where, f"malformed polygon segmentation ({exc})") from None


def _box(annotation: dict[str, Any]) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in annotation["bbox"])
    except (KeyError, TypeError, ValueError):
        return (float("nan"),) * 4
    return (x, y, x + w, y + h)


def read_coco_file(path: Path, split: str | None = None) -> list[ImageRecord]:
    """Every image of one COCO file with its annotations (unchecked).

    An annotation whose ``category_id`` is not among the categories gets the label
    ``category <id>``, which the checks report as unknown.

    Raises:
        InputError: a malformed file, an annotation of an image id that is not listed, two
            images with one id, or an image file that does not exist.
    """
    document = _load(path)
    names = {_id(c): str(c.get("name")) for c in document.get("categories", [])}
    images: dict[Any, dict[str, Any]] = {}
    for entry in document["images"]:
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise InputError(path, f"image entry {entry!r:.60} needs 'id' and 'file_name'")
        if entry["id"] in images:
            raise InputError(path, f"image id {entry['id']} is listed twice")
        images[entry["id"]] = entry
    objects: dict[Any, list[AnnotatedObject]] = {image_id: [] for image_id in images}
    for annotation in document.get("annotations", []):
        if not isinstance(annotation, dict):
            raise InputError(path, "every annotation must be a JSON object")
        where = f"annotation id {annotation.get('id', '?')}"
        image_id = annotation.get("image_id")
        if image_id not in images:
            raise InputError(path, f"{where} refers to image id {image_id}, which is not listed")
        category = annotation.get("category_id")
        objects[image_id].append(
            AnnotatedObject(
                label=names.get(category, f"category {category}"),
                box=_box(annotation),
                where=where,
                crowd=bool(annotation.get("iscrowd", 0)),
                mask=_mask_reader(annotation.get("segmentation"), f"{path}#{where}"),
            )
        )
    records = []
    for image_id, entry in images.items():
        size = None
        if isinstance(entry.get("height"), int) and isinstance(entry.get("width"), int):
            size = (int(entry["height"]), int(entry["width"]))
        file_name = str(entry["file_name"])
        records.append(
            ImageRecord(
                case_id=Path(file_name).with_suffix("").as_posix(),
                image=_image_file(path, file_name),
                annotation=path,
                objects=tuple(objects[image_id]),
                size=size,
                split=split,
            )
        )
    return records


def read_coco(path: Path) -> tuple[list[ImageRecord], list[str]]:
    """The records of every COCO file of ``data.path`` and the category names (of the first
    file, in id order).

    Raises:
        InputError: as ``read_coco_file``; split files whose categories differ.
    """
    records: list[ImageRecord] = []
    categories: list[str] | None = None
    for file, split in coco_files(path):
        names = coco_categories(file)
        if categories is None:
            categories = names
        elif names != categories:
            raise InputError(file, f"categories {names} differ from {categories} of the others")
        records += read_coco_file(file, split)
    return records, categories or []
