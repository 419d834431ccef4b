"""A run folder from elsewhere can hold anything: report.html embeds only the sections
medlens wrote, and model_card.md shows names from data and config as text, never markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.report import write_model_card, write_report
from medlens.report.documents import add_report_section

SCRIPT = "<script>alert('pwned')</script>"
FAIRNESS_HTML = '<section class="audit"><h2>Fairness (subgroup audit)</h2><p>gap 0.02</p></section>'
FAIRNESS_MD = "## Fairness\n\nAUC gap 0.02 between sexes.\n"


def _rendered(markdown: str) -> str:
    """The card as a Markdown viewer that passes raw HTML through would show it."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def test_a_section_medlens_wrote_is_embedded(binary_run: Path) -> None:
    (binary_run / "audit.json").write_text(json.dumps({"attributes": ["sex"]}))
    add_report_section(binary_run, "fairness", FAIRNESS_HTML, FAIRNESS_MD)
    html = (binary_run / "report.html").read_text(encoding="utf-8")
    assert FAIRNESS_HTML in html
    card = (binary_run / "model_card.md").read_text(encoding="utf-8")
    assert "AUC gap 0.02 between sexes." in card


def test_a_section_changed_after_medlens_wrote_it_is_not_embedded(binary_run: Path) -> None:
    (binary_run / "audit.json").write_text(json.dumps({"attributes": ["sex"]}))
    add_report_section(binary_run, "fairness", FAIRNESS_HTML, FAIRNESS_MD)
    (binary_run / "sections" / "fairness.html").write_text(FAIRNESS_HTML + SCRIPT)
    (binary_run / "sections" / "fairness.md").write_text(FAIRNESS_MD + SCRIPT)

    html = write_report(binary_run).read_text(encoding="utf-8")
    assert "<script" not in html and "gap 0.02" not in html
    assert "section fairness was changed after medlens wrote it; not shown" in html
    card = write_model_card(binary_run).read_text(encoding="utf-8")
    assert "<script" not in card
    assert "section fairness was changed after medlens wrote it; not shown." in card
    assert "Attributes audited: sex." in card


def test_a_section_dropped_into_a_run_folder_is_not_embedded(binary_run: Path) -> None:
    sections = binary_run / "sections"
    sections.mkdir()
    (sections / "evil.html").write_text(SCRIPT)
    (sections / "x<b>.html").write_text(SCRIPT)
    html = write_report(binary_run).read_text(encoding="utf-8")
    assert "<script" not in html and "<b>" not in html
    assert "section evil was changed after medlens wrote it; not shown" in html
    assert "section x&lt;b&gt; was changed" in html  # the file name is escaped too


def test_the_report_page_may_run_no_script() -> None:
    from medlens.report.rendering import template_environment

    base = template_environment().loader.get_source(template_environment(), "base.html")[0]
    assert "Content-Security-Policy" in base and "default-src 'none'" in base


def test_model_card_shows_names_from_data_and_config_as_text(crafted_run: Path) -> None:
    card = write_model_card(crafted_run).read_text(encoding="utf-8")
    page = _rendered(card)
    assert "<img" not in page and "<a " not in page and "<b>" not in page
    # a line break in a name starts no heading of its own
    assert not [h for h in ("<h1>Injected", "<h2>Injected") if h in page]
    assert "<h1>Model card: run` # Injected heading</h1>" in page
    # the names are still there, to be read as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "[resnet](javascript:alert(1))" in page


def test_escape_markdown_and_code_spans() -> None:
    from medlens.report.markdown import escape_markdown, markdown_code, markdown_table

    assert escape_markdown("a_b _c_ *c* [d](e) <f> |g|") == (
        "a_b \\_c\\_ \\*c\\* \\[d\\](e) \\<f\\> \\|g\\|"
    )
    assert escape_markdown("one\ntwo\r\n# three") == "one two \\# three"
    assert markdown_code("name") == "`name`"
    assert markdown_code("a`b") == "``a`b``"
    assert markdown_code("`x") == "`` `x ``"
    header, _, row = markdown_table(["Split", "a|b"], [["test", "<i>x</i>"]])
    assert header == "| Split | a\\|b |" and row == "| test | \\<i\\>x\\</i\\> |"
