"""sections/: fragments are handed out only while they have the hash medlens recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.run_folder.sections import (
    HTML,
    MARKDOWN,
    read_section,
    read_sections,
    section_notice,
    write_section,
)


def test_a_written_section_reads_back_verified(tmp_path: Path) -> None:
    write_section(tmp_path, "fairness", "<section>ok</section>", "## Fairness\n\nok\n")
    html = read_section(tmp_path, "fairness", HTML)
    markdown = read_section(tmp_path, "fairness", MARKDOWN)
    assert html is not None and html.text == "<section>ok</section>"
    assert markdown is not None and markdown.text == "## Fairness\n\nok\n"
    index = json.loads((tmp_path / "sections" / "index.json").read_text())
    assert set(index["sha256"]) == {"fairness.html", "fairness.md"}
    assert read_section(tmp_path, "explanations", HTML) is None  # never written


def test_rewriting_a_section_updates_its_hash_and_keeps_the_others(tmp_path: Path) -> None:
    write_section(tmp_path, "fairness", "<p>1</p>", "1")
    write_section(tmp_path, "explanations", "<p>e</p>", "e")
    write_section(tmp_path, "fairness", "<p>2</p>", "2")
    assert [(f.section_id, f.text) for f in read_sections(tmp_path, HTML)] == [
        ("explanations", "<p>e</p>"),
        ("fairness", "<p>2</p>"),
    ]


def test_a_fragment_changed_after_writing_is_not_handed_out(tmp_path: Path) -> None:
    write_section(tmp_path, "fairness", "<p>audit</p>", "audit")
    (tmp_path / "sections" / "fairness.html").write_text("<script>alert(1)</script>")
    fragment = read_section(tmp_path, "fairness", HTML)
    assert fragment is not None and fragment.text is None and not fragment.verified
    assert section_notice(fragment) == (
        "section fairness was changed after medlens wrote it; not shown"
    )
    assert read_section(tmp_path, "fairness", MARKDOWN).text == "audit"  # untouched


def test_a_fragment_medlens_never_recorded_is_not_handed_out(tmp_path: Path) -> None:
    folder = tmp_path / "sections"
    folder.mkdir()
    (folder / "evil.html").write_text("<script>alert(1)</script>")
    (folder / "index.json").write_text("not json")
    assert [(f.section_id, f.text) for f in read_sections(tmp_path, HTML)] == [("evil", None)]


def test_a_section_id_must_be_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain name"):
        write_section(tmp_path, "../escape", "<p/>", "")
