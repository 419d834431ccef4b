"""A case (one labelled sample) and the set of cases a data source provides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from medlens.data.image import Image


@dataclass(frozen=True)
class Case:
    """One sample of a data source.

    Attributes:
        case_id: unique within its source (``train/000123`` for MedMNIST, the file path for
            folders and manifests).
        label: integer class index into ``CaseSet.class_names``; ``None`` when unlabelled.
        split: ``"train" | "val" | "test"`` when the source defines an official split.
        patient_id: groups cases of one patient so splits never separate them; defaults to
            ``case_id`` when the source has no patient column.
        attributes: subgroup columns (sex, age, site, ...) as strings, for audits.
        source: the file that holds the pixels, for error messages.
    """

    case_id: str
    label: int | None
    split: str | None = None
    patient_id: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    source: str = ""


class CaseSet(Protocol):
    """What every data source gives the trainer: cases, class names, and pixel loading."""

    cases: list[Case]
    class_names: list[str]

    def load(self, case: Case) -> Image:
        """Read the pixels of ``case``; raises ``InputError`` naming the file on bad input."""
        ...
