"""``report.html`` of a pipeline run: which masks fed the later stages, each stage's figures,
example test cases through every stage, and where the errors come from."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from medlens.io_utils import write_atomic
from medlens.pipeline.config import PipelineConfig
from medlens.pipeline.context import StageContext
from medlens.pipeline.flow import Outputs
from medlens.run_folder.files import read_json

REPORT = "report.html"

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.note{background:#fff8e1;padding:.6em 1em;border-left:4px solid #f0b400}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    """A figure to 3 decimals; "—" where it is undefined (None or NaN in the JSON)."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.3f}"


def _fmt(entry: dict[str, Any]) -> str:
    value, low, high = entry["value"], entry["ci_low"], entry["ci_high"]
    if low is None or not np.isfinite(low):
        return _num(value)
    return f"{_num(value)} ({low:.3f}–{high:.3f})"


def _with_ci(scores: dict[str, Any], key: str) -> str:
    bounds = scores.get(f"{key}_ci") or [None, None]
    if bounds[0] is None or not np.isfinite(bounds[0]):
        return _num(scores[key])
    return f"{_num(scores[key])} ({bounds[0]:.2f}–{bounds[1]:.2f})"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _class_section(title: str, m: dict[str, Any]) -> str:
    names = m["class_names"]
    rows = [[k.replace("_", " "), _fmt(m[k])] for k in ("balanced_accuracy", "f1", "accuracy")]
    per = [
        [n, *(_with_ci(s, k) for k in ("precision", "recall", "f1")), s["support"]]
        for n, s in m["per_class"].items()
    ]
    confusion = [[names[i], *row] for i, row in enumerate(m["confusion"])]
    return (
        f"<h3>{_e(title)} (n = {m['n']}; 95% bootstrap CI)</h3>"
        + _table(["metric", "value (CI)"], rows)
        + _table(["class", "precision (CI)", "recall (CI)", "F1 (CI)", "cases"], per)
        + "<p>Confusion matrix: rows are the reference classes, columns the predicted ones. "
        "The dataset's type labels may hold errors; look at the off-diagonal cells.</p>"
        + _table(["reference \\ predicted", *names], confusion)
    )


def _examples_figure(ctx: StageContext, config: PipelineConfig, tested: Outputs) -> str:
    """A PNG (data URI) of the first test cases through every stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medlens.report.rendering import png_data_uri

    n = min(config.examples, len(tested.cases))
    if n == 0 or tested.probabilities is None:
        return ""
    panels = ["image", *tested.maps, *tested.crops]
    fig, axes = plt.subplots(n, len(panels), figsize=(2.2 * len(panels), 2.2 * n), squeeze=False)
    names = ctx.cells.class_names
    for row, case in enumerate(tested.cases[:n]):
        image = ctx.image(case).array
        shown = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
        scale = 255.0 if image.max() > 1 else 1.0
        for col, panel in enumerate(panels):
            ax = axes[row][col]
            ax.axis("off")
            if panel == "image":
                ax.imshow(np.clip(shown / scale, 0, 1), cmap="gray")
                pred = names[int(tested.probabilities[row].argmax())]
                ax.set_title(f"{case.case_id}\ntruth {names[case.label]}\npred {pred}", fontsize=7)
            elif panel in tested.maps:
                ax.imshow(np.clip(shown / scale, 0, 1), cmap="gray")
                labels = tested.maps[panel][case.case_id]
                _outline(ax, labels, "-")
                if case.mask is not None:
                    _outline(ax, ctx.regions(case), "--")
                ax.set_title(f"{panel}: found (solid), reference (dashed)", fontsize=6)
            else:
                crop = tested.crops[panel][case.case_id]
                c = crop.image.array
                ax.imshow(
                    np.clip((np.moveaxis(c, 0, -1) if c.shape[0] == 3 else c[0]) / scale, 0, 1),
                    cmap="gray",
                )
                ax.set_title(f"{panel}{' (whole image)' if crop.whole_image else ''}", fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return f'<img alt="example cases" src="{png_data_uri(buffer.getvalue())}">'


def _outline(ax: Any, labels: np.ndarray, style: str) -> None:
    """Each region's outline (region 1 cyan, 2 magenta, ...) on ``ax``."""
    colours = ["cyan", "magenta", "lime", "orange", "white"]
    for value in range(1, int(labels.max()) + 1):
        if (labels >= value).any():
            ax.contour(labels >= value, levels=[0.5], colors=colours[(value - 1) % 5],
                       linewidths=0.8, linestyles=style)  # fmt: skip


def write_pipeline_report(
    run_dir: Path, config: PipelineConfig, ctx: StageContext, tested: Outputs
) -> Path:
    """Write ``report.html`` from ``metrics.json`` and the test cases' outputs."""
    metrics = read_json(run_dir / "metrics.json", required=True)
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{_e(config.name)}</title>"
        f"<style>{_STYLE}</style><h1>Pipeline {_e(config.name)}</h1>",
        f"<p>Data: {_e(config.data.path)}; outer fold {config.data.fold + 1} of "
        f"{config.data.folds} is the test set ({metrics['classification']['n']} cases; "
        f"{metrics.get('train_cases', '?')} training cases); seed {config.seed}.</p>",
        f"<p class='note'>Masks fed to the later stages: <b>{_e(metrics['masks_used'])}</b>.</p>",
        "<h2>Stages</h2>",
        _table(["stage", "kind", "reads"], [[s.name, s.kind, _reads(s)] for s in config.stages]),
    ]
    if ctx.cells.excluded:
        parts.append(
            "<h2>Cases left out</h2>"
            + _table(
                ["case", "reason"], [[getattr(c, "case_id", c), r] for c, r in ctx.cells.excluded]
            )
        )
    parts.append("<h2>Classification</h2>")
    parts.append(_class_section("With this pipeline's masks", metrics["classification"]))
    if "with_reference_masks" in metrics:
        parts.append(
            _class_section(
                "The same fitted later stages on the reference masks",
                metrics["with_reference_masks"],
            )
        )
        src = metrics["error_sources"]
        parts.append(
            "<h3>Where the errors come from</h3>"
            + _table(
                ["cases", "count"],
                [
                    ["right with both masks", src["right_both"]],
                    ["right with reference masks, wrong with predicted (segmentation errors)",
                     src["right_reference_only"]],
                    ["right with predicted masks, wrong with reference", src["right_predicted_only"]],
                    ["wrong with both (classifier errors)", src["wrong_both"]],
                ],
            )
        )  # fmt: skip
    if metrics["segmentation"]:
        rows = [
            [stage, region, _num(s["mean"]), _num(s["sd"]), _num(s["median"])]
            for stage, regions in metrics["segmentation"].items()
            for region, s in regions.items()
        ]
        parts.append(
            "<h2>Segmentation (test cases, Dice per case)</h2>"
            + _table(["stage", "region", "mean", "SD", "median"], rows)
        )
    parts.append("<h2>Example test cases through every stage</h2>")
    parts.append(_examples_figure(ctx, config, tested))
    path = run_dir / REPORT
    write_atomic(path, "\n".join(parts))
    return path


def _reads(stage: Any) -> str:
    for key in ("input", "masks"):
        value = getattr(stage, key, None)
        if value:
            return str(value)
    return "image"
