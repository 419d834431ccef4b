"""``model_card.md`` of a segmentation run: what the model is for, what it learnt from, how
well it segments, and where it fails (the sections of Mitchell et al., 2019, as in
``model_card.py``)."""

from __future__ import annotations

from pathlib import Path

import medlens
from medlens.io_utils import write_atomic
from medlens.report.formatting import MISSING
from medlens.report.markdown import escape_markdown, markdown_code, markdown_table
from medlens.report.segmentation.calibration import calibration_markdown
from medlens.report.segmentation.data import DataFacts, data_facts, open_run_data
from medlens.report.segmentation.formatting import PIXEL, distance_unit
from medlens.report.segmentation.limitations import segmentation_limitations
from medlens.report.segmentation.summary import metric_tables, run_settings, split_sizes
from medlens.run_folder.segmentation import SegmentationRun, read_segmentation_run


def _model_details(run: SegmentationRun, unit: str) -> list[str]:
    lines = ["## Model details", ""]
    lines += [
        f"- {escape_markdown(label)}: {escape_markdown(value)}."
        for label, value in run_settings(run, unit)
    ]
    lines += [
        f"- Trained with medlens {medlens.__version__}; run {markdown_code(run.name)} finished "
        f"{run.finished:%Y-%m-%d}.",
        "- Files: `model.pt` (weights), `preprocessing.json` (inference transforms), "
        "`labels.json` (class names, threshold, post-processing), `config.yaml` (every "
        "setting), `segmentation_metrics.csv` (every test and validation case), `masks/` "
        "(predicted test masks).",
    ]
    return lines


def _intended_use(run: SegmentationRun) -> list[str]:
    return [
        "## Intended use",
        "",
        f"- Research and education: studying how well this kind of model delineates "
        f"{' / '.join(map(escape_markdown, run.class_names[1:]))} on images like the training "
        "images.",
        "- **Not a medical device.** Not validated for diagnosis, measurement, treatment "
        "planning or any clinical decision; do not use it on patients.",
        "- Out of scope: images from other sources, devices, modalities, resolutions or "
        "populations than those below, without a new evaluation.",
    ]


def _data(run: SegmentationRun) -> list[str]:
    source = (run.data_summary or {}).get("source") or run.section("data").get("path") or MISSING
    lines = ["## Data", "", f"Source: {escape_markdown(source)}.", ""]
    sizes = split_sizes(run)
    if sizes:
        lines += markdown_table(["Split", "Images"], [list(row) for row in sizes])
    else:
        lines.append("data_summary.json was not recorded; the split sizes are unknown.")
    return lines


def _metrics(run: SegmentationRun, unit: str) -> list[str]:
    where = (
        " (pixels: the images carry no spacing in their files, so 1 px per axis was assumed)"
        if unit == PIXEL
        else ""
    )
    lines = [
        "## Metrics",
        "",
        f"Per-image metrics summarised over the images of each split; distances in {unit}{where}. "
        "Mean \u00b1 sd, median and range are over the images where the metric is defined; the "
        "NaN and \u221e columns count the images where it is not (an empty reference or "
        "prediction). Test numbers were computed once, after every choice was made on the "
        "validation split.",
    ]
    for table in metric_tables(run, unit):
        title = f"{table['title'].capitalize()}: {table['class_name']} (n = {table['n']})"
        lines += [
            "",
            f"### {escape_markdown(title)}",
            "",
        ]
        lines += markdown_table(
            ["Metric", "Mean \u00b1 sd", "Median", "Range", "Finite", "NaN", "\u221e"],
            [
                [
                    r["label"],
                    r["mean_sd"],
                    r["median"],
                    r["range"],
                    r["n_finite"],
                    r["n_nan"],
                    r["n_inf"],
                ]
                for r in table["rows"]
            ],
        )
    return lines


def render_segmentation_model_card(run: SegmentationRun, facts: DataFacts) -> str:
    """The model card of a segmentation ``run`` as Markdown text.

    Args:
        facts: what the data say about the field of view and the pixel spacing (for the
            limitations).
    """
    unit = distance_unit(run.metrics, facts.physical_spacing)
    notes = segmentation_limitations(run, facts)
    sections = [
        [f"# Model card: {escape_markdown(run.name)}"],
        _model_details(run, unit),
        _intended_use(run),
        _data(run),
        _metrics(run, unit),
        calibration_markdown(run),
        ["## Limitations", "", *(f"- {escape_markdown(note)}" for note in notes)],
        [
            "## Fairness",
            "",
            "No subgroup audit was run. Segmentation quality may differ between patient groups "
            "(sex, age, disease stage, site, device).",
        ],
    ]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"


def _first_test_case(run: SegmentationRun) -> str | None:
    table = run.per_case()
    if table is None:
        return None
    ids = table.loc[table["split"] == "test", "case_id"]
    return str(ids.iloc[0]) if len(ids) else None


def write_segmentation_model_card(run_dir: str | Path) -> Path:
    """Write ``model_card.md`` into the segmentation run folder ``run_dir`` (atomically).

    The data folder of config.yaml is opened (one test case read) to say whether the metrics
    were computed inside a field of view; when it is gone the card says that is unknown.

    Returns:
        The path of model_card.md.

    Raises:
        InputError: naming the run-folder file that is missing or malformed (metrics.json, ...).
    """
    run = read_segmentation_run(run_dir)
    data = open_run_data(run)
    facts = data_facts(data, _first_test_case(run))
    return write_atomic(run.path / "model_card.md", render_segmentation_model_card(run, facts))
