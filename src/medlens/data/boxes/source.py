"""``DetectionSource``: images, their checked objects and the split, from any box layout."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medlens.data.boxes.checks import bad_objects
from medlens.data.boxes.records import AnnotatedObject, BadObject, ImageRecord, Size
from medlens.data.case import Case
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError

LAYOUTS = ("voc", "coco", "csv", "instance_masks")


@dataclass(frozen=True)
class Targets:
    """The reference objects of one image, as arrays.

    Attributes:
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in pixel-edge coordinates.
        labels: ``(N,)`` int64 class indices into the source's ``class_names`` (0-based).
        crowd: ``(N,)`` bool: regions ignored by the scores and left out of training.
        masks: ``(N, H, W)`` bool instance masks on the image's grid, or None when the layout
            has none.
    """

    boxes: np.ndarray
    labels: np.ndarray
    crowd: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls, with_masks: bool = False, size: Size = (0, 0)) -> Targets:
        masks = np.zeros((0, *size), dtype=bool) if with_masks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), masks)


class DetectionSource:
    """Images with objects; ``load`` gives the pixels, ``targets`` the checked objects.

    Attributes:
        root: ``data.path``.
        layout: ``voc``, ``coco``, ``csv`` or ``instance_masks``.
        class_names: the classes, in index order.
        cases: one ``Case`` per image; ``label`` is the rarest class (over the whole source)
            among the image's objects, so stratified splits spread rare classes, or None for
            an image without objects.
        has_masks: every object carries an instance mask.
        skipped: the objects (and images) left out under ``skip_bad``, with the reason.
    """

    def __init__(
        self,
        root: Path,
        layout: str,
        class_names: list[str],
        records: list[ImageRecord],
        skipped: list[BadObject],
    ) -> None:
        self.root = root
        self.layout = layout
        self.class_names = class_names
        self.skipped = skipped
        self._records = {r.case_id: r for r in records}
        index = {name: k for k, name in enumerate(class_names)}
        frequency = Counter(o.label for r in records for o in r.objects if not o.crowd)
        self.cases = []
        for r in records:
            present = {o.label for o in r.objects if not o.crowd}
            rarest = min(present, key=lambda n: (frequency[n], index[n])) if present else None
            label = index[rarest] if rarest is not None else None
            self.cases.append(Case(r.case_id, label, r.split, r.case_id, source=str(r.image)))
        objects = [o for r in records for o in r.objects]
        self.has_masks = bool(objects) and all(o.mask is not None for o in objects)

    def record(self, case: Case) -> ImageRecord:
        try:
            return self._records[case.case_id]
        except KeyError:
            raise InputError(case.source or case.case_id, "is not a case of this source") from None

    def load(self, case: Case) -> Image:
        """The image's pixels (``medlens.data.read_image``)."""
        from medlens.data.readers import read_image

        return read_image(self.record(case).image)

    def targets(self, case: Case, size: Size | None = None) -> Targets:
        """The image's objects as arrays; ``size`` (height, width) is needed for masks.

        Raises:
            InputError: an instance mask that is not on the image's grid.
        """
        record = self.record(case)
        objects = record.objects
        if not objects:
            return Targets.empty(self.has_masks, size or record.size or (0, 0))
        index = {name: k for k, name in enumerate(self.class_names)}
        masks = None
        if self.has_masks:
            shape = size or record.size
            if shape is None:
                raise InputError(record.image, "the image size is needed to decode its masks")
            masks = np.stack([_mask(o, shape, record) for o in objects])
        return Targets(
            boxes=np.array([o.box for o in objects], dtype=np.float32),
            labels=np.array([index[o.label] for o in objects], dtype=np.int64),
            crowd=np.array([o.crowd for o in objects], dtype=bool),
            masks=masks,
        )

    def object_counts(self, cases: list[Case]) -> dict[str, int]:
        """Objects per class (crowd regions left out) over ``cases``."""
        counts = Counter(o.label for c in cases for o in self.record(c).objects if not o.crowd)
        return {name: int(counts.get(name, 0)) for name in self.class_names}


def _mask(obj: AnnotatedObject, size: Size, record: ImageRecord) -> np.ndarray:
    assert obj.mask is not None
    mask = np.asarray(obj.mask(size), dtype=bool)
    if mask.shape != tuple(size):
        raise InputError(
            record.annotation,
            f"{obj.where}: mask of {list(mask.shape)} pixels on an image of {list(size)}",
        )
    return mask


def detect_layout(path: Path) -> str:
    """The box layout of ``data.path``: VOC, COCO, a CSV table or instance masks.

    Raises:
        InputError: none of them.
    """
    from medlens.data.boxes.coco import is_coco_path
    from medlens.data.boxes.instance_masks import is_instance_mask_root
    from medlens.data.boxes.voc import is_voc_root

    if is_voc_root(path):
        return "voc"
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"
    if is_coco_path(path):
        return "coco"
    if path.is_dir() and is_instance_mask_root(path):
        return "instance_masks"
    raise InputError(
        path,
        "is no box layout medlens knows: expected Pascal VOC (Annotations/ + JPEGImages/), "
        "a COCO .json (or a folder of train/val/test.json), a .csv of boxes, or images/ + masks/",
    )


def _read(
    path: Path, layout: str, path_column: str, label_column: str
) -> tuple[list[ImageRecord], list[str] | None]:
    if layout == "voc":
        from medlens.data.boxes.voc import read_voc

        return read_voc(path), None
    if layout == "coco":
        from medlens.data.boxes.coco import read_coco

        return read_coco(path)
    if layout == "csv":
        from medlens.data.boxes.box_csv import read_box_csv

        return read_box_csv(path, path_column, label_column), None
    from medlens.data.boxes.instance_masks import read_instance_masks

    return read_instance_masks(path), None


def image_size(record: ImageRecord) -> Size:
    """``(height, width)`` of the record's image: as declared, else from the file's header.

    Raises:
        InputError: an image that cannot be read.
    """
    if record.size is not None:
        return record.size
    import PIL.Image

    try:
        with PIL.Image.open(record.image) as img:
            width, height = img.size
        return int(height), int(width)
    except (OSError, PIL.Image.DecompressionBombError):
        from medlens.data.readers import read_image

        shape = read_image(record.image).spatial_shape
        if len(shape) != 2:
            raise InputError(record.image, "detection takes 2D images") from None
        return int(shape[0]), int(shape[1])


def open_detection_source(
    path: str | Path,
    layout: str = "auto",
    class_names: list[str] | None = None,
    skip_bad: bool = False,
    path_column: str = "path",
    label_column: str = "label",
) -> DetectionSource:
    """Open images with boxes (and instance masks) and check every object.

    Args:
        path: ``data.path``: a VOC folder, a COCO JSON (or folder of them), a CSV of boxes, or
            an ``images/`` + ``masks/`` folder.
        layout: ``auto`` or one of ``LAYOUTS``.
        class_names: the configured classes (None: COCO's categories, else the labels found,
            sorted).
        skip_bad: leave unusable objects out and list them in ``skipped`` instead of failing.
        path_column, label_column: the CSV layout's column names.

    Raises:
        ConfigError: an unknown layout, or a configured class without any object.
        InputError: a malformed file, an image that does not exist, two images with one id,
            or (without ``skip_bad``) the first unusable object, naming its file and itself.
    """
    root = Path(path)
    if layout != "auto" and layout not in LAYOUTS:
        raise ConfigError(
            "data.layout", f"boxes come in layout auto or {', '.join(LAYOUTS)}, not {layout!r}"
        )
    if not root.exists():
        raise InputError(root, "not found")
    chosen = detect_layout(root) if layout == "auto" else layout
    records, categories = _read(root, chosen, path_column, label_column)
    found = sorted({o.label for r in records for o in r.objects})
    names = list(class_names) if class_names else (categories or found)
    if not names:
        raise InputError(root, "holds no object of any class: nothing to detect")
    if class_names:
        absent = [n for n in class_names if n not in found]
        if absent:
            raise ConfigError(
                "data.class_names",
                f"{', '.join(absent)} has no object in {root} (the annotations hold "
                f"{', '.join(found) or 'none'})",
            )
    seen: dict[str, Path] = {}
    kept, skipped = [], []
    for record in records:
        if record.case_id in seen:
            raise InputError(
                record.annotation,
                f"image id {record.case_id} appears twice ({seen[record.case_id]})",
            )
        seen[record.case_id] = record.annotation
        bad = bad_objects(record, image_size(record), names)
        if bad and not skip_bad:
            more = f" ({len(bad) - 1} more in this file)" if len(bad) > 1 else ""
            raise InputError(
                bad[0].file,
                f"{bad[0].message()}{more}; fix it, or use --skip-bad (data.skip_bad) to leave "
                "such objects out and list them in the run folder",
            )
        if bad:
            skipped += bad
            dropped = {b.object for b in bad}
            record = replace(
                record, objects=tuple(o for o in record.objects if o.where not in dropped)
            )
        kept.append(record)
    return DetectionSource(root, chosen, names, kept, skipped)
