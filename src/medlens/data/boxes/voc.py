"""Pascal VOC: ``Annotations/<id>.xml`` beside ``JPEGImages/``, split lists in
``ImageSets/Main/{train,val,test}.txt`` (``trainval.txt`` when there is no separate val).

Corners are 1-based and inclusive in VOC (``xmin=1`` is the first column); they become
pixel-edge coordinates as ``x1 = xmin - 1``, ``x2 = xmax`` (see ``records``). A box whose
``xmax`` is not above its ``xmin`` (or ``ymax`` its ``ymin``) is of zero size as annotated: an
annotation tool writes it for a click without a drag, whatever the convention. A ``difficult``
object is a crowd region: ignored by the scores and left out of training, as VOC's own
evaluation does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from medlens.data.boxes.records import AnnotatedObject, ImageRecord, Size
from medlens.errors import InputError

SPLITS = ("train", "val", "test")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def is_voc_root(path: Path) -> bool:
    """Whether ``path`` is a folder with ``Annotations/`` (the VOC layout)."""
    return path.is_dir() and (path / "Annotations").is_dir()


def read_voc_xml(path: Path, images_dir: Path, split: str | None = None) -> ImageRecord:
    """One VOC annotation file.

    Objects are returned unchecked; a corner that is not a number becomes a box of NaN, which
    the checks name. The image is ``images_dir/<filename>``, or the file with the XML's stem
    and any image suffix.

    Raises:
        InputError: the XML is malformed, or names an image that does not exist.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(path, f"not a readable VOC XML file ({exc})") from None
    image = _image_path(root, path, images_dir)
    objects = []
    for k, node in enumerate(root.findall("object"), start=1):
        label = (node.findtext("name") or "").strip()
        bndbox = node.find("bndbox")
        xmin, ymin, xmax, ymax = (_number(bndbox, key) for key in ("xmin", "ymin", "xmax", "ymax"))
        box = (xmin - 1.0, ymin - 1.0, xmax, ymax)
        difficult = (node.findtext("difficult") or "0").strip() == "1"
        problem = None
        if xmax <= xmin or ymax <= ymin:  # False for NaN: the generic check names those
            problem = (
                f"the box (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g}) has zero "
                "or negative size"
            )
        objects.append(AnnotatedObject(label, box, f"object {k}", difficult, problem=problem))
    return ImageRecord(path.stem, image, path, tuple(objects), _size(root), split)


def _number(bndbox: ET.Element | None, key: str) -> float:
    text = bndbox.findtext(key) if bndbox is not None else None
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")


def _size(root: ET.Element) -> Size | None:
    try:
        height = int(float(root.findtext("size/height") or ""))
        width = int(float(root.findtext("size/width") or ""))
    except ValueError:
        return None
    return (height, width) if height > 0 and width > 0 else None


def _image_path(root: ET.Element, xml: Path, images_dir: Path) -> Path:
    filename = (root.findtext("filename") or "").strip()
    if filename and (images_dir / filename).is_file():
        return images_dir / filename
    for suffix in _IMAGE_SUFFIXES:
        candidate = images_dir / f"{xml.stem}{suffix}"
        if candidate.is_file():
            return candidate
    named = images_dir / (filename or f"{xml.stem}.jpg")
    raise InputError(xml, f"refers to image {named}, which does not exist")


def voc_splits(root: Path) -> dict[str, str]:
    """Image id -> split from ``ImageSets/Main``; empty when the lists are absent.

    ``train``/``val``/``test`` lists are read as they are; without ``train.txt``,
    ``trainval.txt`` is the training list (validation is then carved from it).

    Raises:
        InputError: an image listed in two splits.
    """
    folder = root / "ImageSets" / "Main"
    lists = {s: folder / f"{s}.txt" for s in SPLITS}
    if not lists["train"].is_file() and (folder / "trainval.txt").is_file():
        lists["train"] = folder / "trainval.txt"
    out: dict[str, str] = {}
    for split, path in lists.items():
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").split():
            if out.get(line, split) != split:
                raise InputError(path, f"lists {line} which is also in the {out[line]} list")
            out[line] = split
    return out


def read_voc(root: Path) -> list[ImageRecord]:
    """Every annotation of a VOC folder, with the official split where it is listed.

    Images listed in no split list (when lists exist) are left out, as VOC's tools do.

    Raises:
        InputError: a missing folder, a malformed XML, an image that does not exist, or a
            split list naming an annotation that does not exist.
    """
    annotations = root / "Annotations"
    images_dir = root / "JPEGImages"
    if not images_dir.is_dir():
        raise InputError(root, "has Annotations/ but no JPEGImages/ folder (the VOC layout)")
    xmls = sorted(p for p in annotations.glob("*.xml") if not p.name.startswith("."))
    if not xmls:
        raise InputError(annotations, "holds no .xml annotation files")
    splits = voc_splits(root)
    by_id = {p.stem: p for p in xmls}
    for image_id in splits:
        if image_id not in by_id:
            raise InputError(root / "ImageSets" / "Main", f"lists {image_id}, which has no XML")
    chosen = [p for p in xmls if not splits or p.stem in splits]
    return [read_voc_xml(p, images_dir, splits.get(p.stem)) for p in chosen]
