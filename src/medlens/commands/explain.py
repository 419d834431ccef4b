"""``medlens explain``: overlays for given images, and a run-level analysis (gallery of true
positives / false positives / false negatives, faithfulness against random maps, the
weight-randomisation sanity check) gathered as a report section."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.errors import ConfigError
from medlens.io_utils import write_json_atomic
from medlens.report.documents import add_report_section
from medlens.run_folder import layout
from medlens.run_folder.reader import read_run_task


@dataclass
class ExplainOutcome:
    """What one ``medlens explain`` call produced (paths are inside the run folder unless
    ``out`` said otherwise)."""

    overlays: list[Path] = field(default_factory=list)
    gallery: list[Any] = field(default_factory=list)
    faithfulness: pd.DataFrame | None = None
    randomization: dict[str, float] | None = None
    section_html: str = ""
    section_markdown: str = ""
    summary: str = ""


def explain_command(
    run_dir: Path,
    inputs: list[Path],
    method: str = "gradcam",
    target: str | None = None,
    out: Path | None = None,
    params: dict[str, Any] | None = None,
    gallery: bool = False,
    n_per_kind: int = 4,
    faithfulness_cases: int = 0,
    randomization: bool = False,
    seed: int = 0,
) -> ExplainOutcome:
    """Explain ``inputs`` and/or analyse the run's test cases.

    With a gallery, faithfulness or randomization analysis the findings are stored as the
    run's ``explanations`` section and report.html and model_card.md are re-written.

    Raises:
        ConfigError: a run whose task has no explanations, or nothing to do.

    Args:
        run_dir: a classification run folder.
        inputs: image files to explain (overlay PNGs go to ``out``, default
            ``<run>/explanations/<method>/``).
        method: gradcam, gradcam++, saliency, smoothgrad, integrated-gradients or occlusion.
        target: class name or index to explain; default the run's decision.
        params: extra keyword arguments of the method (``n_samples`` for smoothgrad...).
        gallery: draw true positives, false positives and false negatives of the test split.
        n_per_kind: cases per gallery row.
        faithfulness_cases: deletion/insertion AUC on this many test cases (0: skip), each
            compared with seeded random maps.
        randomization: the model-randomisation check (SSIM of trained vs randomised maps) on
            the same test cases (at least 4).
        seed: for the choice of test cases and the random maps.
    """
    from medlens.explain import (
        explain_run,
        explanation_gallery,
        faithfulness_report,
        randomization_check,
        summarize_faithfulness,
    )
    from medlens.explain.run_cases import load_run_cases, sample_test_cases
    from medlens.inference.loaded_run import load_run

    params = dict(params or {})
    run_dir = Path(run_dir)
    task = read_run_task(run_dir)
    if not task.explainable:
        raise ConfigError(
            "run_dir", f"{run_dir} is a {task.name} run; explanations are for classifiers"
        )
    if not inputs and not (gallery or faithfulness_cases or randomization):
        raise ConfigError(
            "inputs", "give images to explain, or --gallery / --faithfulness N / --randomization"
        )
    outcome = ExplainOutcome()
    chosen_target: int | str | None = target
    if isinstance(target, str) and target.isdigit():
        chosen_target = int(target)
    if inputs:
        results = explain_run(
            run_dir, list(inputs), method=method, out_dir=out, target=chosen_target, **params
        )
        outcome.overlays = [Path(r.overlay) for r in results if getattr(r, "overlay", None)]
    analysed = gallery or faithfulness_cases > 0 or randomization
    if not analysed:
        return outcome
    if gallery:
        outcome.gallery = explanation_gallery(
            run_dir, method=method, n_per_kind=n_per_kind, **params
        )
    if faithfulness_cases > 0:
        scores = faithfulness_report(
            run_dir, cases=faithfulness_cases, methods=(method,), seed=seed
        )
        scores.to_csv(run_dir / f"faithfulness_{_safe(method)}.csv", index=False)
        outcome.faithfulness = summarize_faithfulness(scores)
    if randomization:
        import torch

        run = load_run(run_dir)
        ids = sample_test_cases(run, max(4, faithfulness_cases), seed=seed)
        x = torch.from_numpy(np.stack(load_run_cases(run, ids)))
        outcome.randomization = randomization_check(
            run.model, x, methods=(method,), seed=seed, method_params={method: params}
        )
    outcome.summary = _summary(method, outcome)
    outcome.section_html = _section_html(method, outcome)
    outcome.section_markdown = _section_markdown(method, outcome, run_dir)
    write_json_atomic(
        run_dir / layout.EXPLANATIONS,
        {
            "method": method,
            "summary": outcome.summary,
            "gallery": [
                {
                    "kind": g.kind,
                    "title": g.title,
                    "path": str(g.path.relative_to(run_dir)),
                    "case_ids": list(g.case_ids),
                }
                for g in outcome.gallery
            ],
            "faithfulness": None
            if outcome.faithfulness is None
            else outcome.faithfulness.to_dict(orient="records"),
            "randomization_ssim": outcome.randomization,
        },
    )
    if outcome.section_html:
        add_report_section(run_dir, "explanations", outcome.section_html, outcome.section_markdown)
    return outcome


def _safe(method: str) -> str:
    return method.replace("+", "p").replace("-", "_")


def _summary(method: str, outcome: ExplainOutcome) -> str:
    parts = [f"Method: {method}."]
    if outcome.gallery:
        parts.append(f"Gallery: {len(outcome.gallery)} figure(s) of test cases.")
    if outcome.faithfulness is not None and len(outcome.faithfulness):
        row = outcome.faithfulness.iloc[0]
        verdict = (
            "beats"
            if row["deletion_auc"] < row["deletion_auc_random"]
            and row["insertion_auc"] > row["insertion_auc_random"]
            else "does not beat"
        )
        parts.append(
            f"Faithfulness: deletion AUC {row['deletion_auc']:.3f} (random maps "
            f"{row['deletion_auc_random']:.3f}, lower is better), insertion AUC "
            f"{row['insertion_auc']:.3f} (random {row['insertion_auc_random']:.3f}, higher is "
            f"better): the map {verdict} random maps on average."
        )
    if outcome.randomization:
        ssim = outcome.randomization.get(method)
        if ssim is not None:
            parts.append(
                f"Model-randomisation check: SSIM between maps of the trained and of a "
                f"randomly re-initialised model {ssim:.3f} (low = the maps depend on what the "
                "model learned; near 1 would mean they do not)."
            )
    return " ".join(parts)


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td>" for v in row)
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _section_html(method: str, outcome: ExplainOutcome) -> str:
    parts = [
        '<section class="explanations">',
        "<h2>Explanations</h2>",
        f"<p>{escape(outcome.summary)}</p>",
    ]
    for figure in outcome.gallery:
        parts.append(f"<h3>{escape(figure.title)}</h3>")
        parts.append(f'<img src="{_png(Path(figure.path))}" alt="{escape(figure.title)}">')
    if outcome.faithfulness is not None:
        parts.append("<h3>Faithfulness (deletion / insertion AUC)</h3>")
        parts.append(_table_html(outcome.faithfulness))
    if outcome.randomization:
        frame = pd.DataFrame(
            [
                {"method": m, "ssim_trained_vs_randomised": v}
                for m, v in outcome.randomization.items()
            ]
        )
        parts.append("<h3>Model-randomisation check</h3>")
        parts.append(_table_html(frame))
    parts.append("</section>")
    return "\n".join(parts)


def _section_markdown(method: str, outcome: ExplainOutcome, run_dir: Path) -> str:
    lines = ["## Explanations", "", outcome.summary, ""]
    for figure in outcome.gallery:
        lines += [f"![{figure.title}]({Path(figure.path).relative_to(run_dir)})", ""]
    if outcome.faithfulness is not None:
        lines += [
            "Faithfulness:",
            "",
            outcome.faithfulness.to_markdown(index=False)
            if _has_tabulate()
            else outcome.faithfulness.to_string(index=False),
            "",
        ]
    if outcome.randomization:
        lines += [f"Randomisation SSIM: {json.dumps(outcome.randomization)}", ""]
    return "\n".join(lines)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
