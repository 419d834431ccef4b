"""Later verbs' findings stored in a finished run folder (``sections/<id>.html`` + ``.md``),
which report.html and model_card.md include when they are re-written."""

from __future__ import annotations

from pathlib import Path

from medlens.io_utils import write_atomic
from medlens.run_folder.layout import SECTIONS


def write_section(run_dir: Path, section_id: str, html: str, markdown: str) -> None:
    """Store one section (``fairness``, ``explanations``) as an HTML and a Markdown fragment."""
    folder = Path(run_dir) / SECTIONS
    folder.mkdir(exist_ok=True)
    write_atomic(folder / f"{section_id}.html", html)
    write_atomic(folder / f"{section_id}.md", markdown)
