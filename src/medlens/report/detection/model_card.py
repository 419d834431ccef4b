"""``model_card.md`` of a detection run (the sections of Mitchell et al., 2019, as for the
other tasks)."""

from __future__ import annotations

from pathlib import Path

import medlens
from medlens.io_utils import write_atomic
from medlens.report.detection.summary import (
    PER_CLASS_LABELS,
    class_rows,
    limitations,
    overall_rows,
    settings,
    split_sizes,
)
from medlens.report.formatting import MISSING
from medlens.report.markdown import escape_markdown, markdown_code, markdown_table
from medlens.run_folder import layout
from medlens.run_folder.detection import DetectionRun, read_detection_run


def render_detection_model_card(run: DetectionRun) -> str:
    """The model card of a detection ``run`` as Markdown."""
    classes = ", ".join(escape_markdown(c) for c in run.class_names)
    lines = [f"# Model card: {escape_markdown(run.name)}", "", "## Model details", ""]
    lines += [f"- {escape_markdown(k)}: {escape_markdown(v)}." for k, v in settings(run)]
    lines += [
        f"- Trained with medlens {medlens.__version__}; run {markdown_code(run.name)} finished "
        f"{run.finished:%Y-%m-%d}.",
        "- Files: `model.pt`, `preprocessing.json`, `labels.json` (classes and thresholds), "
        "`detections.csv` / `detections.json` (validation and test detections), `counts.csv`.",
        "",
        "## Intended use",
        "",
        f"- Research and education: finding and counting {classes} in images like the training "
        "images.",
        "- **Not a medical device.** Not validated for diagnosis or any clinical decision.",
        "",
        "## Data",
        "",
        f"Source: {escape_markdown((run.data_summary or {}).get('source') or MISSING)}.",
        "",
    ]
    sizes = split_sizes(run)
    if sizes:
        lines += markdown_table(
            ["Split", "Images", *run.class_names, "Images without objects"],
            [[s["split"], s["n"], *s["objects"], s["empty"]] for s in sizes],
        )
    lines += ["", "## Metrics (test split, computed once)", ""]
    lines += markdown_table(
        ["Metric", "Test", "CI", "Validation"],
        [[r["label"], r["test"], r["ci"], r["val"]] for r in overall_rows(run)],
    )
    lines += [""]
    lines += markdown_table(
        ["Class", *PER_CLASS_LABELS.values(), "Count MAE / image", "Count bias", "Objects"],
        [
            [
                r["class_name"],
                *[c[0] for c in r["cells"]],
                r["count_mae"],
                r["count_bias"],
                r["n_reference"],
            ]
            for r in class_rows(run)
        ],
    )
    lines += ["", "## Limitations", ""]
    lines += [f"- {escape_markdown(note)}" for note in limitations(run)]
    return "\n".join(lines) + "\n"


def write_detection_model_card(run_dir: str | Path) -> Path:
    """Write ``model_card.md`` of a detection run folder."""
    run = read_detection_run(run_dir)
    return write_atomic(run.path / layout.MODEL_CARD, render_detection_model_card(run))
