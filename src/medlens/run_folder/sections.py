"""Later verbs' findings stored in a finished run folder (``sections/<id>.html`` + ``.md``),
which report.html and model_card.md include when they are re-written.

The fragments are embedded as they are (HTML into report.html, Markdown into model_card.md),
so only fragments medlens itself wrote may be: ``write_section`` records the SHA-256 of each
fragment in ``sections/index.json``, and ``read_section`` hands out a fragment's text only
while the file still has that hash. A fragment edited afterwards, or dropped into the folder
by hand, comes back without its text, and the documents show ``section_notice`` instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from medlens.io_utils import write_atomic, write_json_atomic
from medlens.run_folder.layout import SECTIONS

#: The record of the fragments medlens wrote: ``{"sha256": {"<id>.html": "<hex>", ...}}``.
SECTION_INDEX = "index.json"
HTML = ".html"
MARKDOWN = ".md"
_SECTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class SectionFragment:
    """One fragment of ``sections/``.

    Attributes:
        section_id: the file name without its suffix (``fairness``, ``explanations``).
        text: the fragment as medlens wrote it; ``None`` when the file no longer has the hash
            recorded at writing (changed since, or never written by medlens).
    """

    section_id: str
    text: str | None

    @property
    def verified(self) -> bool:
        return self.text is not None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _recorded(folder: Path) -> dict[str, str]:
    """File name -> recorded SHA-256; empty when the index is missing or malformed."""
    try:
        index = json.loads((folder / SECTION_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    hashes = index.get("sha256") if isinstance(index, dict) else None
    if not isinstance(hashes, dict):
        return {}
    return {str(k): v for k, v in hashes.items() if isinstance(v, str)}


def write_section(run_dir: Path, section_id: str, html: str, markdown: str) -> None:
    """Store one section (``fairness``, ``explanations``) as an HTML and a Markdown fragment,
    and record the SHA-256 of each in ``sections/index.json``.

    Raises:
        ValueError: a ``section_id`` that is not a plain name (letters, digits, ``_``, ``-``).
    """
    if not _SECTION_ID.fullmatch(section_id):
        raise ValueError(f"section id {section_id!r} is not a plain name")
    folder = Path(run_dir) / SECTIONS
    folder.mkdir(exist_ok=True)
    hashes = _recorded(folder)
    for suffix, text in ((HTML, html), (MARKDOWN, markdown)):
        payload = text.encode("utf-8")
        write_atomic(folder / f"{section_id}{suffix}", payload)
        hashes[f"{section_id}{suffix}"] = _sha256(payload)
    write_json_atomic(folder / SECTION_INDEX, {"sha256": dict(sorted(hashes.items()))})


def _fragment(path: Path, hashes: dict[str, str]) -> SectionFragment:
    section_id = path.name[: -len(path.suffix)]
    try:
        payload = path.read_bytes()
    except OSError:
        return SectionFragment(section_id, None)
    if hashes.get(path.name) != _sha256(payload):
        return SectionFragment(section_id, None)
    try:
        return SectionFragment(section_id, payload.decode("utf-8"))
    except UnicodeDecodeError:
        return SectionFragment(section_id, None)


def read_section(run_dir: Path, section_id: str, suffix: str) -> SectionFragment | None:
    """The fragment ``sections/<section_id><suffix>`` (``suffix``: ``.html`` or ``.md``), or
    ``None`` when there is no such file. Its ``text`` is ``None`` unless the file still has
    the hash ``write_section`` recorded."""
    folder = Path(run_dir) / SECTIONS
    path = folder / f"{section_id}{suffix}"
    if not path.is_file():
        return None
    return _fragment(path, _recorded(folder))


def read_sections(run_dir: Path, suffix: str) -> list[SectionFragment]:
    """Every fragment ``sections/*<suffix>``, sorted by name, each checked as in
    ``read_section``."""
    folder = Path(run_dir) / SECTIONS
    if not folder.is_dir():
        return []
    hashes = _recorded(folder)
    return [_fragment(p, hashes) for p in sorted(folder.glob(f"*{suffix}")) if p.is_file()]


def section_notice(fragment: SectionFragment) -> str:
    """The plain-text sentence shown in place of a fragment that failed its check."""
    return f"section {fragment.section_id} was changed after medlens wrote it; not shown"
