"""``medlens evaluate --pred DIR --ref DIR``: every segmentation metric for two folders of masks.

Masks are paired by file name (``case01.png`` with ``case01.png``; ``.nii.gz`` and ``.nii``
count as one suffix), read as label maps (PNG/TIFF/GIF, NIfTI, ``.npy``, DICOM SEG), and
compared class by class with :func:`medlens.metrics.evaluate_segmentation`. Distances are in mm
from the reference's voxel spacing (NIfTI header, DICOM SEG), or from ``--spacing``; plain
images have no spacing, so their distances are in pixels unless ``--spacing`` is given — the
summary says which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.errors import InputError
from medlens.io_utils import write_atomic, write_json_atomic

MASK_SUFFIXES = (".png", ".gif", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz", ".npy", ".dcm")
METRIC_COLUMNS = (
    "dice",
    "jaccard",
    "precision",
    "sensitivity",
    "specificity",
    "hausdorff_distance",
    "hausdorff_distance_95",
    "average_symmetric_surface_distance",
    "normalized_surface_dice",
)


def case_key(path: Path) -> str:
    """The file name without its mask suffix (``liver_003.nii.gz`` -> ``liver_003``)."""
    name = path.name
    for suffix in sorted(MASK_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _mask_files(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(folder, f"--{role} must be a folder of masks")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.lower().endswith(MASK_SUFFIXES):
            key = case_key(path)
            if key in files:
                raise InputError(path, f"two masks for case {key!r} ({files[key].name} too)")
            files[key] = path
    if not files:
        raise InputError(folder, f"no mask files ({', '.join(MASK_SUFFIXES)})")
    return files


def pair_mask_files(pred_dir: Path, ref_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(case, pred file, ref file)`` for every case; a mask without a partner is an error.

    Raises:
        InputError: naming the folder and the first cases that have no partner.
    """
    preds, refs = _mask_files(pred_dir, "pred"), _mask_files(ref_dir, "ref")
    for folder, missing in (
        (pred_dir, sorted(set(refs) - set(preds))),
        (ref_dir, sorted(set(preds) - set(refs))),
    ):
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(
                folder, f"no mask for {len(missing)} case(s) of the other folder: {shown}"
            )
    return [(key, preds[key], refs[key]) for key in sorted(preds)]


def _spacing_of(ref: Any, override: Sequence[float] | None) -> tuple[tuple[float, ...], str]:
    ndim = ref.spatial_dims if ref.array.shape[0] == 1 else ref.array.ndim - 1
    if override:
        spacing = tuple(float(s) for s in override)
        if len(spacing) == 1:
            spacing = spacing * ndim
        if len(spacing) != ndim:
            raise InputError(
                ref.source, f"--spacing gives {len(spacing)} values for a {ndim}D mask"
            )
        return spacing, "mm"
    has_geometry = ref.affine is not None or any(s != 1.0 for s in ref.spacing)
    return tuple(float(s) for s in ref.spacing), "mm" if has_geometry else "voxels"


def evaluate_case(
    pred_path: Path,
    ref_path: Path,
    spacing: Sequence[float] | None = None,
    fov_path: Path | None = None,
    labels: Sequence[int] | None = None,
    tolerance_mm: float = 1.0,
) -> tuple[list[dict[str, Any]], str]:
    """Metric rows (one per class) for one pair of mask files, and the distance unit."""
    from medlens.data.masks import read_mask
    from medlens.metrics import evaluate_segmentation

    ref = read_mask(ref_path)
    pred = read_mask(pred_path, reference=ref)
    if pred.spatial_shape != ref.spatial_shape:
        raise InputError(
            pred_path,
            f"mask shape {pred.spatial_shape} differs from {ref_path} {ref.spatial_shape}",
        )
    voxel_mm, unit = _spacing_of(ref, spacing)
    fov = None
    if fov_path is not None:
        fov = read_mask(fov_path, reference=ref).array[0] > 0
    results = evaluate_segmentation(
        pred.array[0],
        ref.array[0],
        voxel_mm,
        labels=labels,
        fov_mask=fov,
        tolerance_mm=tolerance_mm,
    )
    rows = []
    for label, metrics in results.items():
        rows.append(
            {
                "label": int(label),
                **{k: metrics[k] for k in METRIC_COLUMNS if k in metrics},
                "pred_voxels": metrics["pred_voxels"],
                "ref_voxels": metrics["ref_voxels"],
            }
        )
    return rows, unit


def evaluate_mask_folders(
    pred_dir: Path,
    ref_dir: Path,
    out: Path,
    spacing: Sequence[float] | None = None,
    fov_dir: Path | None = None,
    labels: Sequence[int] | None = None,
    tolerance_mm: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every pair of masks and write ``metrics.csv`` (one row per case and class),
    ``metrics.json`` (per class: mean, sd, median, min, max over the finite values, and how
    many were NaN or infinite) and ``summary.txt`` into ``out``.

    Args:
        pred_dir: predicted masks.
        ref_dir: reference masks, paired with the predictions by file name.
        out: output folder (created).
        spacing: voxel size in mm (one value for all axes, or one per axis); default: the
            reference files' own spacing.
        fov_dir: optional field-of-view masks (same file names): voxels outside are ignored.
        labels: classes to evaluate; default every non-zero label present.
        tolerance_mm: normalised surface Dice tolerance, in mm.

    Returns:
        The JSON summary.
    """
    from tqdm.auto import tqdm

    from medlens.metrics import summarize

    pairs = pair_mask_files(Path(pred_dir), Path(ref_dir))
    fovs = _mask_files(Path(fov_dir), "fov") if fov_dir is not None else {}
    if fov_dir is not None:
        missing = [key for key, _, _ in pairs if key not in fovs]
        if missing:
            raise InputError(fov_dir, f"no field-of-view mask for case {missing[0]!r}")
    rows: list[dict[str, Any]] = []
    units = set()
    for key, pred_path, ref_path in tqdm(pairs, desc="evaluate", disable=not progress):
        case_rows, unit = evaluate_case(
            pred_path, ref_path, spacing, fovs.get(key), labels, tolerance_mm
        )
        units.add(unit)
        rows.extend({"case": key, **row} for row in case_rows)
    table = pd.DataFrame(rows)
    per_class: dict[str, Any] = {}
    for label, group in table.groupby("label"):
        per_class[str(label)] = {
            metric: summarize(group[metric].to_numpy(dtype=float))
            for metric in METRIC_COLUMNS
            if metric in group
        }
    unit = "mm" if units == {"mm"} else "voxels"
    summary = {
        "pred_dir": str(pred_dir),
        "ref_dir": str(ref_dir),
        "n_cases": len(pairs),
        "distance_unit": unit,
        "tolerance_mm": tolerance_mm,
        "classes": per_class,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "metrics.csv", table.to_csv(index=False))
    write_json_atomic(out / "metrics.json", _finite_or_none(summary))
    write_atomic(out / "summary.txt", format_summary(summary))
    return summary


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: they become null (their counts are reported beside them)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table: per class, each metric's mean ± sd (n finite / n)."""
    unit = summary["distance_unit"]
    lines = [f"{summary['n_cases']} cases; distances in {unit}"]
    for label, metrics in summary["classes"].items():
        lines.append(f"class {label}")
        for name, stats in metrics.items():
            mean, std = stats["mean"], stats["std"]
            value = (
                "undefined"
                if mean is None or (isinstance(mean, float) and np.isnan(mean))
                else f"{mean:.4f} ± {std:.4f}"
            )
            extra = (
                f"  ({stats['n_finite']}/{stats['n']} finite)"
                if stats["n_finite"] != stats["n"]
                else ""
            )
            lines.append(f"  {name:<36} {value}{extra}")
    return "\n".join(lines) + "\n"
