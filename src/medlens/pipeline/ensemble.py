"""An ensemble of finished pipeline runs on the same test cases: the mean of their class
probabilities, scored like a pipeline (``kind: pipeline_ensemble``)."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from medlens.errors import InputError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.pipeline.config import EnsembleConfig
from medlens.run_folder.staging import check_free, open_stage, publish_run


def _member_rows(run_dir: Path) -> tuple[list[dict[str, str]], list[str]]:
    path = run_dir / "predictions.csv"
    if not path.is_file():
        raise InputError(run_dir, "is not a finished pipeline run (no predictions.csv)")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [c[2:] for c in (rows[0] if rows else {}) if c.startswith("p_")]
    return rows, names


def mean_probabilities(members: list[Path]) -> tuple[list[dict[str, str]], list[str], np.ndarray]:
    """The first member's rows, the class names, and the members' mean probabilities.

    Raises:
        InputError: a member with other classes or other test cases than the first (naming it).
    """
    first_rows, names = _member_rows(members[0])
    ids = [r["case_id"] for r in first_rows]
    total = np.zeros((len(ids), len(names)))
    for member in members:
        rows, member_names = _member_rows(member)
        if member_names != names:
            raise InputError(member, f"classes {member_names} differ from {members[0]}'s {names}")
        if [r["case_id"] for r in rows] != ids:
            raise InputError(
                member, f"its test cases differ from {members[0]}'s (another fold or data)"
            )
        total += np.array([[float(r[f"p_{n}"]) for n in names] for r in rows])
    return first_rows, names, total / len(members)


def build_ensemble(config: EnsembleConfig, overwrite: bool = False) -> Path:
    """Write the ensemble's run folder: ``predictions.csv``, ``metrics.json``, ``report.html``."""
    from medlens.pipeline.scoring import class_metrics

    final = config.output_dir / config.name
    check_free(final, overwrite)
    rows, names, probs = mean_probabilities(config.members)
    truth = np.array([names.index(r["truth"]) for r in rows])
    stage = open_stage(final)
    write_atomic(
        stage / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    metrics: dict[str, Any] = {
        "kind": "pipeline",
        "ensemble_of": [str(m) for m in config.members],
        "fold": None,
        "classification": class_metrics(truth, probs, names, config.n_bootstrap, 0),
        "segmentation": {},
        "masks_used": "each member's own",
    }
    write_json_atomic(stage / "metrics.json", metrics)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case_id", "image", "truth", "predicted", *[f"p_{n}" for n in names]])
    for row, p in zip(rows, probs, strict=True):
        writer.writerow(
            [
                row["case_id"],
                row["image"],
                row["truth"],
                names[int(p.argmax())],
                *[f"{v:.6f}" for v in p],
            ]
        )
    write_atomic(stage / "predictions.csv", buffer.getvalue())
    c = metrics["classification"]
    items = "".join(f"<li>{html.escape(str(m))}</li>" for m in config.members)
    write_atomic(
        stage / "report.html",
        f"<!doctype html><meta charset='utf-8'><h1>Ensemble {html.escape(config.name)}</h1>"
        f"<p>Mean class probabilities of:</p><ul>{items}</ul>"
        f"<p>Balanced accuracy {c['balanced_accuracy']['value']:.3f} "
        f"(95% CI {c['balanced_accuracy']['ci_low']:.3f}–{c['balanced_accuracy']['ci_high']:.3f}); "
        f"macro-F1 {c['f1']['value']:.3f}; accuracy {c['accuracy']['value']:.3f} (n = {c['n']}).</p>",
    )
    return publish_run(stage, final)
