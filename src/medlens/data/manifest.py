"""A CSV manifest (one row per case: a path, a label, optional patient and subgroup columns)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medlens.data.case import Case
from medlens.data.image import Image
from medlens.data.readers import read_image
from medlens.data.validation import first_line
from medlens.errors import InputError

logger = logging.getLogger(__name__)

SPLIT_VALUES = ("train", "val", "test")


class ManifestSource:
    """Cases listed in a CSV file, read lazily with ``read_image``.

    Paths may be image files, DICOM files, DICOM series folders or NIfTI files; relative
    paths resolve against the CSV's folder. Labels are class names (mapped through
    ``class_names``, or the sorted unique values when none are given) or integer indices.
    A ``split`` column with ``train``/``val``/``test`` (when present) gives the official split.

    Args:
        csv_path: the manifest.
        path_column: column holding the image paths.
        label_column: column holding the labels.
        patient_column: column grouping cases by patient; when the CSV has no such column each
            case is its own patient (a warning is logged).
        subgroup_columns: columns copied to ``Case.attributes`` (sex, age group, site, ...).
        class_names: the classes in label order.
        split_column: column with the official split, used when present.

    Raises:
        InputError: naming the CSV (and line) for an unreadable CSV, a missing column, an
            empty cell, a label not in ``class_names``, a listed file that does not exist, or
            a file listed twice.
    """

    def __init__(
        self,
        csv_path: str | Path,
        path_column: str = "path",
        label_column: str = "label",
        patient_column: str | None = "patient_id",
        subgroup_columns: Sequence[str] = (),
        class_names: Sequence[str] | None = None,
        split_column: str | None = "split",
    ) -> None:
        self.csv_path = Path(csv_path)
        table = _read_csv(self.csv_path)
        for column in (path_column, label_column, *subgroup_columns):
            if column not in table.columns:
                raise InputError(
                    self.csv_path, f"has no column {column!r} (columns: {', '.join(table.columns)})"
                )
        if patient_column is not None and patient_column not in table.columns:
            logger.warning(
                "%s has no %r column: each case is treated as its own patient",
                self.csv_path,
                patient_column,
            )
            patient_column = None
        if split_column is not None and split_column not in table.columns:
            split_column = None
        labels = [self._cell(table, i, label_column) for i in range(len(table))]
        self.class_names, label_index = _label_map(self.csv_path, labels, class_names)
        self.cases: list[Case] = []
        seen: dict[str, int] = {}
        for i in range(len(table)):
            line = i + 2  # the header is line 1
            path = self._resolve(self._cell(table, i, path_column), line)
            if str(path) in seen:
                raise InputError(
                    self.csv_path,
                    f"line {line}: {path} is already listed on line {seen[str(path)]}",
                )
            seen[str(path)] = line
            split = self._split(table, i, split_column)
            case_id = str(path)
            patient = self._cell(table, i, patient_column) if patient_column else case_id
            attributes = {c: str(table.at[i, c]) for c in subgroup_columns}
            self.cases.append(
                Case(
                    case_id=case_id,
                    label=label_index[labels[i]],
                    split=split,
                    patient_id=patient,
                    attributes=attributes,
                    source=str(path),
                )
            )

    def _cell(self, table: pd.DataFrame, row: int, column: str) -> str:
        value = str(table.at[row, column]).strip()
        if not value:
            raise InputError(self.csv_path, f"line {row + 2}: column {column!r} is empty")
        return value

    def _resolve(self, value: str, line: int) -> Path:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.csv_path.parent / path
        if not path.exists():
            raise InputError(path, f"listed in {self.csv_path} line {line} but not found")
        return path

    def _split(self, table: pd.DataFrame, row: int, column: str | None) -> str | None:
        if column is None:
            return None
        value = str(table.at[row, column]).strip().lower()
        if value not in SPLIT_VALUES:
            raise InputError(
                self.csv_path,
                f"line {row + 2}: split {value!r} is not one of {', '.join(SPLIT_VALUES)}",
            )
        return value

    def load(self, case: Case) -> Image:
        """Read the case's file (or DICOM series folder)."""
        return read_image(case.source)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(path, f"cannot be read as CSV ({first_line(exc)})") from None
    if table.empty:
        raise InputError(path, "lists no cases")
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _label_map(
    csv_path: Path, labels: list[str], class_names: Sequence[str] | None
) -> tuple[list[str], dict[str, int]]:
    """Class names and the index of every label value found in the CSV."""
    integers = all(value.lstrip("-").isdigit() for value in labels)
    if class_names is None:
        if integers:
            values = sorted({int(v) for v in labels})
            if values[0] < 0:
                raise InputError(csv_path, f"label {values[0]} is negative")
            names = [str(k) for k in range(values[-1] + 1)]
            return names, {v: int(v) for v in labels}
        names = sorted(set(labels))
        return names, {name: k for k, name in enumerate(names)}
    names = list(class_names)
    index: dict[str, int] = {}
    for row, value in enumerate(labels):
        if value in names:
            index[value] = names.index(value)
        elif integers and 0 <= int(value) < len(names):
            index[value] = int(value)
        else:
            raise InputError(
                csv_path, f"line {row + 2}: label {value!r} is not one of class_names {names}"
            )
    return names, index
