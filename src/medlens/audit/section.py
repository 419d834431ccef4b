"""The audit as a section of report.html (an HTML fragment) and of model_card.md (markdown).

Both show, per attribute, the group table (n, prevalence, AUC/TPR/FPR with intervals, PPV,
selection rate, calibration) and the gap table (difference with interval, ratio, the two
groups, whether it is flagged), then any threshold mitigation before/after.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any

from medlens.audit.result import AuditResult, Estimate, Gap, GroupMetrics

DASH = "\u2013"
ARROW = "\u2192"
MISSING = "\u2014"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or not math.isfinite(float(value)):
        return MISSING
    return f"{float(value):.{digits}f}"


def _est(est: Estimate) -> str:
    if not math.isfinite(est.value):
        return MISSING
    if not (math.isfinite(est.ci_low) and math.isfinite(est.ci_high)):
        return _num(est.value)
    return f"{est.value:.3f} ({est.ci_low:.3f}{DASH}{est.ci_high:.3f})"


def _group_cells(g: GroupMetrics) -> list[str]:
    return [
        g.group,
        str(g.n),
        _num(g.prevalence),
        _est(g.metrics["auc"]),
        _est(g.metrics["tpr"]),
        _est(g.metrics["fpr"]),
        _num(g.metrics["ppv"].value),
        _num(g.metrics["selection_rate"].value),
        _num(g.metrics["ece"].value),
        f"{_num(g.calibration_slope, 2)} / {_num(g.calibration_intercept, 2)}",
        g.status,
    ]


GROUP_HEADER = [
    "Group",
    "n",
    "Prevalence",
    "AUC (CI)",
    "TPR (CI)",
    "FPR (CI)",
    "PPV",
    "Selection rate",
    "ECE",
    "Cal. slope / intercept",
    "Status",
]
GAP_HEADER = ["Criterion", "Difference (CI)", "Ratio (CI)", "Highest > lowest", "Flagged"]


def _gap_cells(g: Gap) -> list[str]:
    diff = _est(Estimate(g.difference, g.ci_low, g.ci_high))
    ratio = _est(Estimate(g.ratio, g.ratio_ci_low, g.ratio_ci_high))
    between = f"{g.higher_group} > {g.lower_group}" if g.higher_group is not None else MISSING
    flag = "yes" if g.flagged else "no"
    if g.note:
        flag += f" ({g.note})"
    return [g.title, diff, ratio, between, flag]


def _mitigation_rows(record: dict[str, Any]) -> list[list[str]]:
    return [
        [
            str(row["gap"]),
            _num(row["before"]),
            "yes" if row["before_flagged"] else "no",
            _num(row["after"]),
            "yes" if row["after_flagged"] else "no",
        ]
        for row in record.get("gaps", [])
    ]


MITIGATION_HEADER = ["Gap", "Before", "Flagged before", "After", "Flagged after"]


def _mitigation_title(record: dict[str, Any]) -> str:
    return (
        f"Per-group thresholds for {record['attribute']} ({record['constraint']}), "
        f"fitted on validation, measured on {record.get('applied_to', 'test')}"
    )


def _overall_text(record: dict[str, Any]) -> str:
    overall = record.get("overall") or {}
    parts = [
        f"{name.replace('_', ' ')} {_num(v['before'])} {ARROW} {_num(v['after'])}"
        for name, v in overall.items()
    ]
    return f"Overall on test: {', '.join(parts)}." if parts else ""


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def audit_section_markdown(result: AuditResult) -> str:
    """The audit as markdown for model_card.md (figures linked by their relative paths)."""
    lines = ["## Fairness (subgroup audit)", "", result.summary, ""]
    for attribute in result.attributes:
        lines += [f"### {attribute}", ""]
        rows = [_group_cells(g) for g in result.groups if g.attribute == attribute]
        lines += [*_md_table(GROUP_HEADER, rows), ""]
        gaps = [_gap_cells(g) for g in result.gaps if g.attribute == attribute]
        lines += [*_md_table(GAP_HEADER, gaps), ""]
        for plot in result.plots.get(attribute, []):
            lines += [f"![{attribute}]({plot})", ""]
    for record in result.mitigations:
        if "error" in record:
            lines += [f"Mitigation for {record['attribute']} ({record['constraint']}) not run: "
                      f"{record['error']}", ""]  # fmt: skip
            continue
        lines += [f"### {_mitigation_title(record)}", ""]
        lines += [*_md_table(MITIGATION_HEADER, _mitigation_rows(record)), ""]
        lines += [_overall_text(record), ""]
    lines.append(
        "Gaps are max - min over groups with at least "
        f"{result.min_group_size} cases; flagged = the {100 * result.ci_level:g}% bootstrap "
        "interval of the difference excludes 0 (no correction for multiple comparisons)."
    )
    return "\n".join(lines).rstrip() + "\n"


def _html_table(header: list[str], rows: list[list[str]], flagged: list[bool] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for k, row in enumerate(rows):
        cls = ' class="flagged"' if flagged and flagged[k] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(plot: str, base_dir: Path | None, alt: str) -> str:
    src = escape(plot)
    if base_dir is not None and (base_dir / plot).is_file():
        data = base64.b64encode((base_dir / plot).read_bytes()).decode("ascii")
        src = f"data:image/png;base64,{data}"
    return f'<img src="{src}" alt="{escape(alt)}">'


def audit_section_html(result: AuditResult, base_dir: str | Path | None = None) -> str:
    """The audit as an HTML fragment (a ``<section>``) for report.html.

    Args:
        result: the audit.
        base_dir: the folder holding ``plots/`` (the run folder); when given, figures are
            embedded as base64 PNG so the page stays self-contained, else linked relatively.
    """
    base = Path(base_dir) if base_dir is not None else None
    parts = [
        '<section class="audit">',
        "<h2>Fairness (subgroup audit)</h2>",
        f"<p>{escape(result.summary)}</p>",
    ]
    for attribute in result.attributes:
        parts.append(f"<h3>{escape(attribute)}</h3>")
        groups = [g for g in result.groups if g.attribute == attribute]
        parts.append(_html_table(GROUP_HEADER, [_group_cells(g) for g in groups]))
        gaps = [g for g in result.gaps if g.attribute == attribute]
        parts.append(
            _html_table(GAP_HEADER, [_gap_cells(g) for g in gaps], [g.flagged for g in gaps])
        )
        parts += [
            _img(p, base, f"{attribute} audit figure") for p in result.plots.get(attribute, [])
        ]
    for record in result.mitigations:
        if "error" in record:
            parts.append(
                f"<p>Mitigation for {escape(str(record['attribute']))} "
                f"({escape(str(record['constraint']))}) not run: {escape(str(record['error']))}</p>"
            )
            continue
        parts.append(f"<h3>{escape(_mitigation_title(record))}</h3>")
        parts.append(_html_table(MITIGATION_HEADER, _mitigation_rows(record)))
        parts.append(f"<p>{escape(_overall_text(record))}</p>")
    parts.append(
        f"<p>Gaps are max {DASH} min over groups with at least {result.min_group_size} cases; "
        f"flagged = the {100 * result.ci_level:g}% bootstrap interval of the difference excludes "
        "0 (no correction for multiple comparisons).</p>"
    )
    parts.append("</section>")
    return "\n".join(parts) + "\n"
