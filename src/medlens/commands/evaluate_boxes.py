"""``medlens evaluate --pred DETECTIONS --ref ANNOTATIONS``: a box file scored against
reference annotations, with the metrics of a detection run.

``--pred`` is a ``detections.csv`` (``medlens predict`` of a detection run, or a run's own):
``image_id`` or ``path``, ``class``, ``score``, ``x1, y1, x2, y2`` in the image's pixels and,
optionally, ``finding`` (each class's operating threshold is then the lowest score of its
findings; without it, 0.5). ``--ref`` is any box layout a detection run reads (a Pascal VOC
folder, a COCO JSON, a CSV of boxes, images/ + masks/). Each detection's image is matched to
a reference image by its file (resolved path), else by its file stem; a reference image
without detections counts (its objects are misses). Writes ``metrics.json`` and
``counts.csv`` into ``--out`` (both only once everything is read and checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic, write_json_atomic

REQUIRED = ("class", "score", "x1", "y1", "x2", "y2")
DEFAULT_THRESHOLD = 0.5


def is_box_file(path: Path) -> bool:
    """Whether ``--pred`` names a box file (not a folder of masks)."""
    return path.is_file() and path.suffix.lower() == ".csv"


def read_detections_csv(path: Path) -> pd.DataFrame:
    """The rows of a detections CSV (rows with an ``error`` are unreadable inputs: left out).

    Raises:
        InputError: an unreadable file, or a missing column.
    """
    try:
        table = pd.read_csv(path, dtype={"image_id": str, "path": str, "class": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV file ({type(exc).__name__})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if "image_id" not in table.columns and "path" not in table.columns:
        missing.append("image_id or path")
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}")
    if "error" in table.columns:
        table = table[table["error"].fillna("").astype(str) == ""]
    return table[table["class"].notna()]


def _image_key(row: pd.Series) -> str:
    value = row.get("path") if isinstance(row.get("path"), str) else row.get("image_id")
    return str(value)


def _match_images(table: pd.DataFrame, source: Any, pred: Path) -> dict[str, str]:
    """Detection image key -> reference case id.

    Raises:
        InputError: a detection on an image the reference does not have.
    """
    by_path = {str(Path(c.source).resolve()): c.case_id for c in source.cases}
    by_stem: dict[str, str] = {}
    for c in source.cases:
        by_stem.setdefault(Path(c.source).stem, c.case_id)
    out = {}
    for key in sorted({_image_key(r) for _, r in table.iterrows()}):
        candidate = Path(key)
        resolved = str(candidate.resolve()) if candidate.exists() else None
        case_id = by_path.get(resolved or "") or by_stem.get(candidate.stem)
        if case_id is None:
            raise InputError(
                pred, f"has detections on image {key}, which the reference does not have"
            )
        out[key] = case_id
    return out


def _thresholds(table: pd.DataFrame, class_names: list[str]) -> list[float]:
    if "finding" not in table.columns:
        return [DEFAULT_THRESHOLD] * len(class_names)
    found = table[table["finding"].astype(str).str.lower().isin(["true", "1"])]
    out = []
    for name in class_names:
        scores = found.loc[found["class"] == name, "score"]
        out.append(float(scores.min()) if len(scores) else float(np.nextafter(1.0, 2.0)))
    return out


def evaluate_box_files(
    pred: Path,
    ref: Path,
    out_dir: Path,
    n_bootstrap: int = 1000,
    match_iou: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Score a detections CSV against reference annotations; write ``metrics.json`` and
    ``counts.csv`` into ``out_dir``.

    Returns:
        The metrics document (``medlens.metrics.detection.evaluate_detections``).

    Raises:
        InputError: an unreadable file, a class the reference does not have, or a detection
            on an image it does not have.
    """
    from medlens.data.boxes import open_detection_source
    from medlens.metrics.detection import DetectedObjects, ReferenceObjects, evaluate_detections

    table = read_detections_csv(pred)
    source = open_detection_source(ref)
    names = list(source.class_names)
    unknown = sorted(set(table["class"]) - set(names))
    if unknown:
        raise InputError(
            pred, f"has class(es) {', '.join(unknown)}; the reference has {', '.join(names)}"
        )
    keys = _match_images(table, source, pred)
    table = table.assign(case_id=[keys[_image_key(r)] for _, r in table.iterrows()])
    index = {n: k for k, n in enumerate(names)}
    detections, references = [], []
    from medlens.data.boxes.source import image_size

    for case in source.cases:
        size = image_size(source.record(case))
        targets = source.targets(case, size)
        references.append(
            ReferenceObjects.of(targets.boxes, targets.labels, targets.crowd, image_id=case.case_id)
        )
        rows = table[table["case_id"] == case.case_id]
        detections.append(
            DetectedObjects.of(
                rows[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float),
                rows["score"].to_numpy(dtype=float),
                [index[c] for c in rows["class"]],
                image_id=case.case_id,
            )
        )
    result = evaluate_detections(
        detections,
        references,
        names,
        _thresholds(table, names),
        match_iou=match_iou,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    counts = result.pop("counts")
    document = {"pred": str(pred), "ref": str(ref), "class_names": names, **result}
    write_atomic(out_dir / "counts.csv", pd.DataFrame(counts).to_csv(index=False))
    write_json_atomic(out_dir / "metrics.json", document)
    return document


def format_box_summary(document: dict[str, Any]) -> str:
    """The headline numbers, one line each."""
    lines = [f"{document['n_images']} images scored"]
    for name in ("map50", "map", "f1"):
        entry = document["metrics"][name]
        lines.append(
            f"{name}: {entry['value']:.4f} (CI {entry['ci_low']:.4f} - {entry['ci_high']:.4f})"
        )
    for name, entry in document["per_class"].items():
        lines.append(f"{name}: AP@0.5 {entry['ap50']['value']:.4f}, F1 {entry['f1']['value']:.4f}")
    return "\n".join(lines) + "\n"


def check_box_arguments(pred: Path | None, ref: Path | None, run_dir: Path | None) -> None:
    """Refuse a box evaluation without both files, or with a run folder."""
    if pred is None or ref is None or run_dir is not None:
        raise ConfigError(
            "--pred/--ref", "box evaluation takes --pred DETECTIONS.csv and --ref ANNOTATIONS"
        )
