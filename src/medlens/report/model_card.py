"""``model_card.md``: what the model is for, what it learnt from, how well it does, where it fails.

Follows the sections of Mitchell et al., "Model Cards for Model Reporting" (2019), filled
from the run folder. Fairness and explanation sections say plainly when no audit or
explanation analysis was run (``audit.json`` / ``explanations.json`` absent).
"""

from __future__ import annotations

from pathlib import Path

import medlens
from medlens.io_utils import write_atomic
from medlens.report.figures import SPLIT_TITLES
from medlens.report.formatting import (
    MISSING,
    describe_threshold,
    format_ci,
    format_duration,
    format_level,
    format_value,
    metric_label,
)
from medlens.report.limitations import limitations
from medlens.report.markdown import escape_markdown, markdown_code, markdown_table
from medlens.report.trust_section import trust_markdown
from medlens.run_folder.classification import RunFolder, read_run_folder
from medlens.run_folder.sections import MARKDOWN, read_section, section_notice


def _architecture(run: RunFolder) -> str:
    """What made the predictions: a network, a feature pipeline, or an ensemble of runs."""
    model = run.config.get("model") or {}
    features = run.config.get("features")
    ensemble = run.path / "ensemble.json"
    if ensemble.is_file():
        import json

        try:
            spec = json.loads(ensemble.read_text())
        except (OSError, ValueError):
            spec = {}
        members = spec.get("members") or []
        names = ", ".join(
            escape_markdown(m.get("name", MISSING))
            + (f" (weight {m['weight']:.3f})" if isinstance(m.get("weight"), float) else "")
            if isinstance(m, dict)
            else escape_markdown(m)
            for m in members
        )
        method = escape_markdown(spec.get("method", "an"))
        return f"- Architecture: {method} ensemble of {names or MISSING}."
    if isinstance(features, dict):
        selector = escape_markdown((features.get("selector") or {}).get("name", "none"))
        classifier = escape_markdown((features.get("classifier") or {}).get("name", MISSING))
        source = escape_markdown(features.get("source", MISSING))
        backbone = (
            f" of {escape_markdown(features.get('backbone'))}" if features.get("backbone") else ""
        )
        return (
            f"- Architecture: {source} features{backbone} -> feature selection: {selector} "
            f"-> {classifier} (scikit-learn pipeline, `model.joblib`)."
        )
    return (
        f"- Architecture: {escape_markdown(model.get('name', MISSING))}; initial weights: "
        f"{escape_markdown(model.get('pretrained') or 'random initialisation')}; "
        f"fine-tuning strategy: {escape_markdown(model.get('strategy', MISSING))}."
    )


def _model_details(run: RunFolder) -> list[str]:
    names = run.class_names
    task = "binary" if len(names) == 2 else f"{len(names)}-class"
    weights = next(
        (f for f in ("model.pt", "model.joblib") if (run.path / f).is_file()), "ensemble.json"
    )
    return [
        "## Model details",
        "",
        f"- Task: {task} image classification: {', '.join(map(escape_markdown, names))}.",
        _architecture(run),
        f"- Trained with medlens {medlens.__version__}; run {markdown_code(run.name)} "
        f"finished {run.finished:%Y-%m-%d}; "
        f"best epoch {run.metrics.get('best_epoch', MISSING)}; training time "
        f"{format_duration(run.metrics.get('train_seconds'))}.",
        f"- Files: `{weights}` (the model), `preprocessing.json` (inference transforms), "
        "`labels.json` (class names and threshold), `config.yaml` (every setting).",
    ]


def _intended_use(run: RunFolder) -> list[str]:
    return [
        "## Intended use",
        "",
        "- Research and education: studying how well this kind of model separates "
        f"{' / '.join(map(escape_markdown, run.class_names))} on data like the training data.",
        "- **Not a medical device.** Not validated for diagnosis, triage or any clinical decision; "
        "do not use it on patients.",
        "- Out of scope: data from other sources, modalities, resolutions or populations than "
        "those below, without a new evaluation.",
    ]


def _data(run: RunFolder) -> list[str]:
    summary = run.data_summary or {}
    splits = summary.get("splits") or {s: e for s, e in run.metrics["splits"].items()}
    names = run.class_names
    rows = []
    for split in ("train", "val", "test"):
        if split in splits:
            counts = splits[split].get("class_counts", {})
            rows.append(
                [
                    SPLIT_TITLES[split],
                    splits[split].get("n", MISSING),
                    *(counts.get(n, MISSING) for n in names),
                ]
            )
    lines = ["## Data", "", f"Source: {escape_markdown(summary.get('source') or MISSING)}.", ""]
    lines += markdown_table(["Split", "Cases", *names], rows)
    skipped = summary.get("skipped_files") or []
    lines += ["", f"Skipped files: {len(skipped)}" + (" (see report.html)." if skipped else ".")]
    if run.data_summary is None:
        lines += [
            "",
            "data_summary.json was not recorded; counts are those of the evaluated splits.",
        ]
    return lines


def _metrics(run: RunFolder) -> list[str]:
    splits = run.split_names()
    level = format_level(run.metrics["splits"][splits[-1]].get("ci_level", 0.95))
    names: list[str] = []
    for split in splits:
        names += [n for n in run.metrics["splits"][split]["metrics"] if n not in names]
    rows = []
    for name in names:
        row = [metric_label(name, len(run.class_names))]
        for split in splits:
            entry = run.metrics["splits"][split]["metrics"].get(name, {})
            row.append(
                f"{format_value(entry.get('value'))} "
                f"({format_ci(entry.get('ci_low'), entry.get('ci_high'))})"
            )
        rows.append(row)
    lines = [
        "## Metrics",
        "",
        f"Values with {level} percentile bootstrap confidence intervals "
        "(cases resampled within each class). "
        "Test numbers were computed once, on a split no choice looked at.",
        "",
    ]
    lines += markdown_table(
        [
            "Metric",
            *(f"{SPLIT_TITLES.get(s, s)} (n = {run.metrics['splits'][s]['n']})" for s in splits),
        ],
        rows,
    )
    test = run.metrics["splits"].get("test", {})
    if test.get("metrics_at_0.5"):
        at_half = ", ".join(
            f"{escape_markdown(metric_label(k))} {format_value(v)}"
            for k, v in test["metrics_at_0.5"].items()
        )
        lines += ["", f"At the fixed threshold 0.5 (test): {at_half}."]
    lines += [
        "",
        "## Decision threshold",
        "",
        escape_markdown(describe_threshold(run.threshold_method, run.threshold, run.class_names)),
    ]
    return lines


def _fairness(run: RunFolder) -> list[str]:
    lines = ["## Fairness", ""]
    if run.audit is None:
        return lines + [
            "No subgroup audit was run. Performance may differ between patient groups (sex, age, "
            "site, device); run `medlens audit` before drawing conclusions about any group."
        ]
    lines.append("A subgroup audit was run; full results are in `audit.json`.")
    fragment = read_section(run.path, "fairness", MARKDOWN)
    if fragment is not None and fragment.text is not None:
        return [fragment.text.rstrip()]
    if fragment is not None:
        lines += ["", escape_markdown(section_notice(fragment)) + "."]
    summary = run.audit.get("summary")
    if isinstance(summary, str):
        lines += ["", escape_markdown(summary)]
    attributes = run.audit.get("attributes")
    if isinstance(attributes, list) and attributes:
        lines += ["", f"Attributes audited: {', '.join(map(escape_markdown, attributes))}."]
    return lines


def _explanations(run: RunFolder) -> list[str]:
    lines = ["## Explanations", ""]
    if run.explanations is None:
        return lines + [
            "No explanation analysis was run: it is unknown which image regions drive the "
            "predictions. Run `medlens explain` to check that the model looks at the anatomy "
            "rather than at markers or borders."
        ]
    lines.append("An explanation analysis was run; results are in `explanations.json`.")
    fragment = read_section(run.path, "explanations", MARKDOWN)
    if fragment is not None and fragment.text is not None:
        return [fragment.text.rstrip()]
    if fragment is not None:
        lines += ["", escape_markdown(section_notice(fragment)) + "."]
    summary = run.explanations.get("summary")
    if isinstance(summary, str):
        lines += ["", escape_markdown(summary)]
    return lines


def render_model_card(run: RunFolder) -> str:
    """The model card of ``run`` as Markdown text."""
    sections = [
        [f"# Model card: {escape_markdown(run.name)}"],
        _model_details(run),
        _intended_use(run),
        _data(run),
        _metrics(run),
        trust_markdown(run),
        ["## Limitations", "", *(f"- {escape_markdown(note)}" for note in limitations(run))],
        _fairness(run),
        _explanations(run),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def write_model_card(run_dir: str | Path) -> Path:
    """Write ``model_card.md`` into the run folder ``run_dir`` (atomically) and return its path.

    Raises:
        InputError: naming the run-folder file that is missing or malformed (metrics.json, ...).
    """
    run = read_run_folder(run_dir)
    return write_atomic(run.path / "model_card.md", render_model_card(run))
