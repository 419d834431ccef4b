"""The cases of a pipeline: images, their region masks and one class label each
(``CellData``), read and checked once, with the rule for classes too small to learn."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlens.data.image import Image
from medlens.data.readers import read_image
from medlens.errors import ConfigError, InputError
from medlens.pipeline.config import CellData


@dataclass(frozen=True)
class CellCase:
    """One image: its id (the file stem), files, and class index (into ``class_names``)."""

    case_id: str
    image: Path
    mask: Path | None
    label: int


@dataclass
class CellSet:
    """The usable cases, the class names, the region names (label 1.. in the order of
    ``CellData.mask_values``) and the cases left out by the small-class rule, with why."""

    cases: list[CellCase]
    class_names: list[str]
    regions: list[str]
    excluded: list[tuple[CellCase | str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.cases], dtype=np.int64)

    def region_label(self, name: str, where: str) -> int:
        """The label value of region ``name`` in the masks (1-based).

        Raises:
            ConfigError: ``where`` (a config key) names a region the masks lack.
        """
        if name not in self.regions:
            raise ConfigError(
                where,
                f"the masks hold no region {name!r}; they hold {', '.join(self.regions) or 'none'}",
            )
        return self.regions.index(name) + 1


def _key(case_id: str) -> str:
    """Ids compare as numbers when both are digits, so ``7`` matches ``007``."""
    return str(int(case_id)) if case_id.isdigit() else case_id


def read_labels(data: CellData) -> dict[str, str]:
    """``{id key: label value}`` from the labels CSV.

    Raises:
        InputError: a missing file or column, an empty id, or an id listed twice.
    """
    path = data.path / data.labels
    if not path.is_file():
        raise InputError(path, "labels file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in (data.id_column, data.label_column):
            if column not in columns:
                raise InputError(path, f"has no column {column!r} (columns: {', '.join(columns)})")
        out: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            case_id = (row[data.id_column] or "").strip()
            if not case_id:
                raise InputError(path, f"line {line}: empty {data.id_column}")
            if _key(case_id) in out:
                raise InputError(path, f"line {line}: id {case_id!r} is listed twice")
            out[_key(case_id)] = (row[data.label_column] or "").strip()
    return out


def open_cells(data: CellData, need_masks: bool) -> CellSet:
    """Every image of ``data`` with its mask and label, after the small-class rule.

    Raises:
        InputError: no image matches, an image lacks its mask or its label, a label value
            outside ``class_names``.
        ConfigError: masks asked for but none configured; a class smaller than ``folds``
            under ``small_classes: error``.
    """
    images = sorted(p for p in data.path.glob(data.images) if p.is_file())
    if not images:
        raise InputError(data.path, f"no image matches {data.images!r}")
    if need_masks and data.masks is None:
        raise ConfigError("data.masks", "a stage needs masks, but the data names none")
    labels = read_labels(data)
    names = _class_names(data, labels)
    cases: list[CellCase] = []
    for image in images:
        value = labels.get(_key(image.stem))
        if value is None:
            raise InputError(image, f"has no label in {data.labels}")
        if value not in names:
            raise InputError(
                data.path / data.labels,
                f"id {image.stem}: label {value!r} is not one of {', '.join(names)}",
            )
        mask = None
        if data.masks is not None:
            mask = data.path / data.masks.format(stem=image.stem)
            if need_masks and not mask.is_file():
                raise InputError(image, f"has no mask (expected {mask})")
        cases.append(CellCase(image.stem, image, mask, list(names).index(value)))
    cell_set = CellSet(cases, list(names.values()), list(data.mask_values))
    return _apply_small_class_rule(cell_set, data)


def _class_names(data: CellData, labels: dict[str, str]) -> dict[str, str]:
    """Label value -> class name, in a stable order (the config's, else sorted values)."""
    if data.class_names is not None:
        return {str(k): v for k, v in data.class_names.items()}
    return {v: v for v in sorted(set(labels.values()))}


def _drop_absent_classes(cell_set: CellSet) -> CellSet:
    """Named classes without a single case are not part of the task; listed as excluded."""
    counts = np.bincount(cell_set.labels, minlength=len(cell_set.class_names))
    keep = [k for k, n in enumerate(counts) if n > 0]
    if len(keep) == len(counts):
        return cell_set
    remap = {old: new for new, old in enumerate(keep)}
    absent: list[tuple[CellCase | str, str]] = [
        (cell_set.class_names[k], "class named in data.class_names without a case")
        for k, n in enumerate(counts)
        if n == 0
    ]
    return CellSet(
        [CellCase(c.case_id, c.image, c.mask, remap[c.label]) for c in cell_set.cases],
        [cell_set.class_names[k] for k in keep],
        cell_set.regions,
        [*cell_set.excluded, *absent],
    )


def _apply_small_class_rule(cell_set: CellSet, data: CellData) -> CellSet:
    cell_set = _drop_absent_classes(cell_set)
    counts = np.bincount(cell_set.labels, minlength=len(cell_set.class_names))
    small = [k for k, n in enumerate(counts) if n < data.folds]
    if not small:
        return cell_set
    listed = ", ".join(f"{cell_set.class_names[k]} ({counts[k]})" for k in small)
    if data.small_classes == "error":
        raise ConfigError(
            "data.small_classes",
            f"classes with fewer cases than the {data.folds} folds cannot be learned nor "
            f"scored in every fold: {listed}; set small_classes: exclude to leave them out "
            "(listed in the report)",
        )
    keep = [k for k in range(len(cell_set.class_names)) if k not in small]
    remap = {old: new for new, old in enumerate(keep)}
    reason = f"class with fewer than {data.folds} cases (small_classes: exclude)"
    excluded: list[tuple[CellCase | str, str]] = [
        (c, f"{cell_set.class_names[c.label]}: {reason}")
        for c in cell_set.cases
        if c.label in small
    ]
    cases = [
        CellCase(c.case_id, c.image, c.mask, remap[c.label])
        for c in cell_set.cases
        if c.label not in small
    ]
    names = [cell_set.class_names[k] for k in keep]
    return CellSet(cases, names, cell_set.regions, [*cell_set.excluded, *excluded])


def load_image(case: CellCase) -> Image:
    """The case's image as read by medlens (float32, channel first)."""
    return read_image(case.image)


def load_regions(case: CellCase, data: CellData, image: Image) -> np.ndarray:
    """The case's mask as a region label map ``(H, W)`` uint8: 0 background, region ``i`` of
    ``mask_values`` is ``i + 1``.

    Raises:
        InputError: a mask of another shape than the image, several channels, or grey levels
            that are neither 0 nor a configured region.
    """
    if case.mask is None:
        raise InputError(case.image, "has no mask")
    raw = read_image(case.mask).array
    if raw.shape[0] == 3 and np.array_equal(raw[0], raw[1]) and np.array_equal(raw[0], raw[2]):
        raw = raw[:1]
    if raw.shape[0] != 1:
        raise InputError(case.mask, f"has {raw.shape[0]} channels; a mask is one grey channel")
    if raw.shape[1:] != image.array.shape[1:]:
        raise InputError(
            case.mask,
            f"mask is {tuple(raw.shape[1:])} but its image {case.image.name} is "
            f"{tuple(image.array.shape[1:])} (spatial shapes must match)",
        )
    grey = raw[0]
    out = np.zeros(grey.shape, dtype=np.uint8)
    known = np.zeros(grey.shape, dtype=bool) | (grey == 0)
    for index, level in enumerate(data.mask_values.values(), start=1):
        hit = grey == level
        out[hit] = index
        known |= hit
    if not known.all():
        unknown = sorted({float(v) for v in np.unique(grey[~known])})[:5]
        raise InputError(
            case.mask,
            f"holds grey levels {', '.join(f'{v:g}' for v in unknown)} that are neither 0 nor "
            f"a region of data.mask_values ({data.mask_values})",
        )
    return out
