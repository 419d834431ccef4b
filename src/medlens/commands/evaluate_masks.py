"""``medlens evaluate --pred DIR --ref DIR``: every segmentation metric for two folders of masks.

Masks are paired by file name (``case01.png`` with ``case01.png``; ``.nii.gz`` and ``.nii``
count as one suffix), read as label maps (PNG/TIFF/GIF, NIfTI, ``.npy``, DICOM SEG), and
compared class by class with :func:`medlens.metrics.evaluate_segmentation`. Distances are in mm
from the reference's voxel spacing (NIfTI header, DICOM SEG), or from ``--spacing``; plain
images (PNG, TIFF, GIF, ``.npy``) carry no spacing, so 1 px per axis is assumed and their
distances (and the surface Dice tolerance) are in px unless ``--spacing`` is given. The summary
says which, and states the spacing ``--spacing`` gave.
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
#: ``Image.meta["format"]`` of the mask readers that take the spacing (mm) from the file.
_FORMATS_WITH_SPACING = {"nifti", "dicom", "dicom_seg"}
#: Where a case's spacing came from: its file, ``--spacing``, or nowhere (1.0 px assumed).
FROM_FILE, FROM_OPTION, ASSUMED = "file", "--spacing", "assumed"
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


def _spacing_from_file(mask: Any) -> bool:
    """Whether the mask's spacing was read from its file (NIfTI, DICOM SEG) rather than
    assumed (1.0 per axis for PNG/TIFF/GIF/BMP, ``.npy``, a DICOM without a pixel spacing)."""
    meta = mask.meta
    return (
        meta.get("spacing_source") != "assumed"
        and meta.get("spacing_known") is not False
        and str(meta.get("format", "")).lower() in _FORMATS_WITH_SPACING
    )


def _spacing_of(ref: Any, override: Sequence[float] | None) -> tuple[tuple[float, ...], str]:
    """The voxel spacing to measure distances with, and where it came from (``FROM_FILE``,
    ``FROM_OPTION`` or ``ASSUMED``)."""
    ndim = ref.spatial_dims if ref.array.shape[0] == 1 else ref.array.ndim - 1
    if override:
        spacing = tuple(float(s) for s in override)
        if len(spacing) == 1:
            spacing = spacing * ndim
        if len(spacing) != ndim:
            raise InputError(
                ref.source, f"--spacing gives {len(spacing)} values for a {ndim}D mask"
            )
        return spacing, FROM_OPTION
    return tuple(float(s) for s in ref.spacing), FROM_FILE if _spacing_from_file(ref) else ASSUMED


def evaluate_case(
    pred_path: Path,
    ref_path: Path,
    spacing: Sequence[float] | None = None,
    fov_path: Path | None = None,
    labels: Sequence[int] | None = None,
    tolerance_mm: float = 1.0,
) -> tuple[list[dict[str, Any]], str]:
    """Metric rows (one per class) for one pair of mask files, and the distance unit:
    ``"mm"`` (spacing from the file or ``spacing``) or ``"px"`` (none: 1 px per axis)."""
    from medlens.data.masks import read_mask
    from medlens.metrics import evaluate_segmentation

    ref = read_mask(ref_path)
    pred = read_mask(pred_path, reference=ref)
    if pred.spatial_shape != ref.spatial_shape:
        raise InputError(
            pred_path,
            f"mask shape {pred.spatial_shape} differs from {ref_path} {ref.spatial_shape}",
        )
    voxel_mm, source = _spacing_of(ref, spacing)
    unit = "px" if source == ASSUMED else "mm"
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
                "distance_unit": unit,
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
        tolerance_mm: normalised surface Dice tolerance, in mm (in px for masks whose spacing
            is assumed).

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
    units: dict[str, str] = {}
    for key, pred_path, ref_path in tqdm(pairs, desc="evaluate", disable=not progress):
        case_rows, units[key] = evaluate_case(
            pred_path, ref_path, spacing, fovs.get(key), labels, tolerance_mm
        )
        rows.extend({"case": key, **row} for row in case_rows)
    table = pd.DataFrame(rows)
    per_class: dict[str, Any] = {}
    for label, group in table.groupby("label"):
        per_class[str(label)] = {
            metric: summarize(group[metric].to_numpy(dtype=float))
            for metric in METRIC_COLUMNS
            if metric in group
        }
    in_px = sorted(key for key, unit in units.items() if unit == "px")
    summary = {
        "pred_dir": str(pred_dir),
        "ref_dir": str(ref_dir),
        "n_cases": len(pairs),
        **_distance_facts(spacing, len(pairs), in_px),
        "tolerance_mm": tolerance_mm,
        "classes": per_class,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "metrics.csv", table.to_csv(index=False))
    write_json_atomic(out / "metrics.json", _finite_or_none(summary))
    write_atomic(out / "summary.txt", format_summary(summary))
    return summary


def _distance_facts(
    spacing: Sequence[float] | None, n_cases: int, in_px: list[str]
) -> dict[str, Any]:
    """``distance_unit`` (``mm``, ``px``, or ``mixed``), where the spacing came from, and
    the ``--spacing`` given or the cases measured in px."""
    if spacing:
        return {
            "distance_unit": "mm",
            "spacing_source": FROM_OPTION,
            "spacing_mm": [float(s) for s in spacing],
        }
    if not in_px:
        return {"distance_unit": "mm", "spacing_source": FROM_FILE}
    if len(in_px) == n_cases:
        return {"distance_unit": "px", "spacing_source": ASSUMED}
    return {"distance_unit": "mixed", "spacing_source": "mixed", "cases_in_px": in_px}


def _distance_line(summary: dict[str, Any]) -> str:
    """Where the distances' unit came from, in words."""
    unit, n = summary["distance_unit"], summary["n_cases"]
    if summary.get("spacing_source") == FROM_OPTION:
        given = summary["spacing_mm"]
        spacing = (
            f"{given[0]:g} mm per axis"
            if len(given) == 1
            else " \u00d7 ".join(f"{s:g}" for s in given) + " mm"
        )
        return f"{n} cases; distances in mm (spacing {spacing}, from --spacing)"
    if unit == "mm":
        return f"{n} cases; distances in mm (spacing from the mask files)"
    if unit == "px":
        return (
            f"{n} cases; distances in px (the masks carry no spacing, so 1 px per axis was "
            "assumed; give --spacing for mm)"
        )
    in_px = summary.get("cases_in_px") or []
    return (
        f"{n} cases; distances in mm for {n - len(in_px)} and in px for {len(in_px)} whose masks "
        "carry no spacing (see the distance_unit column of metrics.csv): the means mix units; "
        "give --spacing for mm"
    )


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
    tolerance = f"{summary['tolerance_mm']:g} {unit if unit in ('mm', 'px') else 'mm or px'}"
    lines = [_distance_line(summary), f"normalised surface Dice tolerance: {tolerance}"]
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
