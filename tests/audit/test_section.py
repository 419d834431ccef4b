"""The audit in report.html and model_card.md, and audit.json round trips."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd

from medlens.audit import AuditResult, audit_predictions, audit_section_html, audit_section_markdown


class _Tables(HTMLParser):
    """Counts tables and the rows of each; records any <script> start tag."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.rows.append(0)
        elif tag == "tr":
            self.rows[-1] += 1
        elif tag == "script":
            self.scripts += 1


def _result(rng: np.random.Generator) -> AuditResult:
    n = 300
    label = (rng.uniform(size=n) < 0.5).astype(int)
    prob = 1 / (1 + np.exp(-(rng.normal(size=n) + 2 * label - 1)))
    hostile = "<script>alert(1)</script>"
    df = pd.DataFrame(
        {"label": label, "p": prob, "site": rng.choice(["A", hostile, "C"], n, p=[0.5, 0.45, 0.05])}
    )
    return audit_predictions(df, ["site"], "label", "p", 0.5, 100, min_group_size=30)


def test_html_fragment_has_one_row_per_group_and_gap_and_escapes_names(rng) -> None:
    result = _result(rng)
    html = audit_section_html(result)
    parser = _Tables()
    parser.feed(html)
    assert parser.scripts == 0  # a group name cannot inject markup
    assert "&lt;script&gt;" in html
    assert parser.rows == [1 + 3, 1 + 4]  # header + groups A, <script>, C; header + 4 gaps
    assert html.startswith('<section class="audit">') and result.summary.split(" (")[0] in html


def test_markdown_tables_and_status(rng) -> None:
    result = _result(rng)
    markdown = audit_section_markdown(result)
    group_rows = [line for line in markdown.splitlines() if line.startswith("| C |")]
    assert len(group_rows) == 1 and group_rows[0].rstrip(" |").endswith("too small")
    assert markdown.count("| Equal opportunity (TPR gap) |") == 1


def test_json_round_trip_keeps_every_number(rng) -> None:
    result = _result(rng)
    data = json.loads(json.dumps(result.to_dict()))
    again = AuditResult.from_dict(data)
    assert again.to_dict() == data
    table, table_again = result.group_table(), again.group_table()
    pd.testing.assert_frame_equal(table, table_again)
    assert again.summary == result.summary
