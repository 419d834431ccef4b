"""``report.html`` of a registration: the accuracy table, checkerboard and overlay figures
before and after (``medlens register``), and the documents of a ``task: registration`` run
(report.html and model_card.md), rendered from ``templates/registration.html``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

import medlens
from medlens.io_utils import write_atomic
from medlens.report.rendering import png_data_uri, template_environment

#: Squares along each side of the checkerboard figure.
CHECKER_SQUARES = 8


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def middle_slices(volume: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The image itself (2D), or the middle slice across each axis (3D)."""
    if volume.ndim == 2:
        return [("image", volume)]
    return [
        (f"middle slice across axis {axis}", np.take(volume, volume.shape[axis] // 2, axis))
        for axis in range(3)
    ]


def checkerboard(a: np.ndarray, b: np.ndarray, squares: int = CHECKER_SQUARES) -> np.ndarray:
    """``a`` and ``b`` (same 2D shape) interleaved in ``squares`` x ``squares`` tiles."""
    rows = (np.arange(a.shape[0]) * squares // max(a.shape[0], 1)) % 2
    cols = (np.arange(a.shape[1]) * squares // max(a.shape[1], 1)) % 2
    return np.where((rows[:, None] + cols[None, :]) % 2 == 0, a, b)


def overlay(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RGB: ``a`` in magenta, ``b`` in green (grey where they agree); inputs in [0, 1]."""
    return np.clip(np.stack([a, b, a], axis=-1), 0.0, 1.0)


def comparison_figure(fixed: np.ndarray, before: np.ndarray, after: np.ndarray) -> bytes:
    """A PNG: one row per slice, columns checkerboard and overlay, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    planes = list(
        zip(middle_slices(fixed), middle_slices(before), middle_slices(after), strict=True)
    )
    fig, axes = plt.subplots(len(planes), 4, figsize=(12, 3.1 * len(planes)), squeeze=False)
    titles = ("checkerboard before", "checkerboard after", "overlay before", "overlay after")
    for row, ((name, f), (_, b), (_, a)) in enumerate(planes):
        panels = (checkerboard(f, b), checkerboard(f, a), overlay(f, b), overlay(f, a))
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    rows = [
        {
            "name": "NCC (fixed vs moving)",
            "before": _fmt(metrics.get("ncc_before")),
            "after": _fmt(metrics.get("ncc_after")),
        }
    ]
    if "folded_pct" in metrics:
        jac = metrics.get("jacobian", {})
        rows.append(
            {"name": "Folded voxels (%)", "before": "0", "after": _fmt(metrics["folded_pct"], 4)}
        )
        rows.append(
            {
                "name": "Jacobian determinant min / mean / max",
                "before": "1 / 1 / 1",
                "after": " / ".join(_fmt(jac.get(k)) for k in ("min", "mean", "max")),
            }
        )
    if "tre_mm" in metrics:
        rows.append(
            {
                "name": f"TRE median / mean (mm, {metrics['tre_mm']['n']} landmarks)",
                "before": " / ".join(
                    _fmt(metrics["tre_before_mm"][k], 2) for k in ("median", "mean")
                ),
                "after": " / ".join(_fmt(metrics["tre_mm"][k], 2) for k in ("median", "mean")),
            }
        )
    for label, entry in metrics.get("propagated_labels", {}).get("labels", {}).items():
        rows.append(
            {
                "name": f"Dice of label {label} (HD95 after, mm: {_fmt(entry['hausdorff_distance_95'], 2)})",
                "before": _fmt(entry.get("dice_before")),
                "after": _fmt(entry["dice"]),
            }
        )
    return rows


def write_registration_report(
    out_dir: Path,
    fixed: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    metrics: dict[str, Any],
    chain: dict[str, Any],
) -> Path:
    """Write ``report.html`` of a ``medlens register`` output folder.

    Args:
        fixed, before, after: the fixed image and the moving image on its grid before and
            after registration, intensities in [0, 1], ``(*spatial)``.
        metrics: the folder's ``metrics.json`` document.
        chain: its ``transform.json`` document.
    """
    figure = png_data_uri(comparison_figure(fixed, before, after))
    stages = [
        {
            "kind": s["kind"],
            "how": s.get("method") or s.get("loss", ""),
            "seconds": _fmt(s.get("seconds"), 1),
        }
        for s in chain["stages"]
    ]
    html = (
        template_environment()
        .get_template("registration.html")
        .render(
            title="Registration report",
            heading="Registration",
            subtitle=f"{chain['moving']['path']} onto {chain['fixed']['path']}, "
            f"{_fmt(metrics.get('seconds'), 1)} s",
            version=medlens.__version__,
            rows=_rows(metrics),
            before_means="the moving image placed by the files' geometry alone (image centres "
            "aligned when a file has none)",
            figures=[
                {
                    "src": figure,
                    "caption": "Fixed image against the moving image on its grid: "
                    "checkerboards, and overlays (fixed magenta, moving green, grey where "
                    "they agree)",
                }
            ],
            stages=stages,
            details_title="Transform chain (transform.json)",
            details=json.dumps(
                {k: v for k, v in chain.items() if k not in ("fixed", "moving")}, indent=1
            )[:20000],
        )
    )
    return write_atomic(Path(out_dir) / "report.html", html)


def _run_documents(run_dir: Path) -> tuple[dict[str, Any], str]:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    config = (run_dir / "config.yaml").read_text(encoding="utf-8")
    return metrics, config


def _run_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    test = metrics.get("splits", {}).get("test", {})
    names = {
        "ncc": "NCC (fixed vs moving), mean over test pairs",
        "dice": "Mean Dice of propagated labels, test pairs",
        "folded_pct": "Folded voxels (%), mean over test pairs",
    }
    return [
        {
            "name": label,
            "before": _fmt(test.get(f"{key}_before")) if key != "folded_pct" else "0",
            "after": _fmt(test.get(key), 4),
        }
        for key, label in names.items()
        if key in test
    ]


def write_registration_run_report(run_dir: str | Path) -> Path:
    """``report.html`` of a ``task: registration`` run: its test pairs before and after."""
    run_dir = Path(run_dir)
    metrics, config = _run_documents(run_dir)
    html = (
        template_environment()
        .get_template("registration.html")
        .render(
            title=f"Registration run {run_dir.name}",
            heading=f"Registration run {run_dir.name.removesuffix('.partial')}",
            subtitle=f"a learned network ({metrics.get('model', 'voxelmorph')}), "
            f"{metrics.get('epochs_run', '?')} epochs, "
            f"{metrics.get('pairs', {}).get('test', '?')} test pairs",
            version=medlens.__version__,
            rows=_run_rows(metrics),
            before_means="the pair as given, without any transform",
            figures=[],
            stages=[],
            details_title="Configuration (config.yaml)",
            details=config,
        )
    )
    return write_atomic(run_dir / "report.html", html)


def write_registration_model_card(run_dir: str | Path) -> Path:
    """``model_card.md`` of a ``task: registration`` run."""
    run_dir = Path(run_dir)
    metrics, _ = _run_documents(run_dir)
    lines = [
        f"# Model card: {run_dir.name.removesuffix('.partial')}",
        "",
        "## Model details",
        "",
        f"- A VoxelMorph-style network ({metrics.get('model', 'voxelmorph')}) that predicts "
        "a displacement field from a (moving, fixed) pair; trained with medlens "
        f"{medlens.__version__} for {metrics.get('epochs_run', '?')} epochs.",
        "",
        "## Intended use",
        "",
        "- Research and education. **Not a medical device**; not for any clinical decision.",
        "- Images like the training images (same modality, grid and field of view) only.",
        "",
        "## Metrics (test pairs)",
        "",
        "| Measure | Before | After |",
        "|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['before']} | {r['after']} |" for r in _run_rows(metrics)]
    lines += [
        "",
        "## Limitations",
        "",
        "- Pairs are registered on the training grid; images are resampled to it and back.",
        "- Few training pairs give a network that generalises poorly; compare it with the "
        "optimisation (`medlens register` without `--model`).",
    ]
    return write_atomic(run_dir / "model_card.md", "\n".join(lines) + "\n")
