"""Re-opening a segmentation run's data for its overlays: the images and reference masks through
the run's config, the predicted masks from ``masks/``.

Nothing here raises for data that is gone: the report still renders, and each function says in
one sentence what could not be read and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import MedlensError
from medlens.run_folder.segmentation import SegmentationRun

#: ``Image.meta["format"]`` of the readers that take the spacing from the file (mm).
FORMATS_WITH_SPACING = {"nifti", "dicom", "dicom_seg"}


def spacing_from_file(image: Any) -> bool:
    """Whether ``image.spacing`` was read from its file (NIfTI header, DICOM pixel spacing)
    rather than assumed (1.0 per axis for PNG, JPEG, TIFF, ``.npy``, a DICOM without
    ``PixelSpacing``). The same rule as ``train/segmentation/run.py``, which records the run's
    ``distance_unit`` with it."""
    meta = getattr(image, "meta", None) or {}
    return (
        meta.get("spacing_source") != "assumed"
        and meta.get("spacing_known") is not False
        and str(meta.get("format", "")).lower() in FORMATS_WITH_SPACING
    )


@dataclass
class RunData:
    """The run's data source, opened again, or the sentence saying why it could not be.

    Attributes:
        source: what ``open_segmentation_source`` returned (``None`` when unavailable).
        note: one sentence for the reader when ``source`` is ``None``.
    """

    source: Any | None
    note: str | None = None
    _cases: dict[str, Any] = field(default_factory=dict, repr=False)

    def case(self, case_id: str) -> Any | None:
        """The ``Case`` with this id, or ``None``."""
        if self.source is None:
            return None
        if not self._cases:
            self._cases = {c.case_id: c for c in self.source.cases}
        return self._cases.get(case_id)


@dataclass(frozen=True)
class CaseArrays:
    """What an overlay needs of one case, on the image's own grid."""

    image: np.ndarray  # (C, *spatial) intensities
    reference: np.ndarray  # (*spatial) class indices
    prediction: np.ndarray  # (*spatial) class indices
    spacing: tuple[float, ...]  # mm per spatial axis


@dataclass(frozen=True)
class DataFacts:
    """What the data say about how the metrics were computed; ``None`` when unknown."""

    field_of_view: bool | None
    physical_spacing: bool | None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_run_data(run: SegmentationRun) -> RunData:
    """Open the run's data source with the data settings of its config.yaml.

    Returns:
        ``RunData`` with the source, or with ``source=None`` and a note such as "The data folder
        /data/drive is no longer available, so no overlays could be drawn."
    """
    data = run.section("data")
    path = data.get("path")
    if not path:
        return RunData(None, "config.yaml records no data path, so no overlays could be drawn.")
    if not Path(path).exists():
        return RunData(
            None, f"The data folder {path} is no longer available, so no overlays could be drawn."
        )
    try:
        from medlens.data.segmentation import open_segmentation_source

        source = open_segmentation_source(
            path, layout=data.get("layout") or "auto", class_names=data.get("class_names")
        )
    except (MedlensError, OSError, ValueError, ImportError) as exc:
        return RunData(
            None,
            f"The data folder {path} could not be opened again ({_reason(exc)}), so no overlays "
            "could be drawn.",
        )
    return RunData(source)


def load_case_arrays(run: SegmentationRun, data: RunData, case_id: str) -> CaseArrays | str:
    """The image, reference and predicted label maps of a test case, or a sentence saying why
    they could not be read."""
    from medlens.data.masks import read_mask

    if data.source is None:
        return data.note or "The data folder could not be opened."
    mask_path = run.mask_path(case_id)
    if mask_path is None:
        return f"The predicted mask of case {case_id} is not in masks/."
    case = data.case(case_id)
    if case is None:
        return f"Case {case_id} is no longer in the data folder."
    try:
        image = data.source.load(case)
        reference = data.source.load_mask(case, image)
        prediction = read_mask(mask_path, reference=image)
    except (MedlensError, OSError, ValueError) as exc:
        return f"Case {case_id} could not be read ({_reason(exc)})."
    return CaseArrays(
        image=image.array,
        reference=np.asarray(reference.array[0]),
        prediction=np.asarray(prediction.array[0]),
        spacing=tuple(float(s) for s in image.spacing),
    )


def data_facts(data: RunData, case_id: str | None) -> DataFacts:
    """Whether a field of view was given and whether the images carry a physical pixel
    spacing, read from one case (all cases of a source share both)."""
    case = None if case_id is None else data.case(case_id)
    if case is None or data.source is None:
        return DataFacts(None, None)
    try:
        image = data.source.load(case)
        roi = data.source.load_roi(case, image)
    except (MedlensError, OSError, ValueError):
        return DataFacts(None, None)
    return DataFacts(roi is not None, spacing_from_file(image))
