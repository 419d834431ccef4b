"""Markdown pieces shared by the model cards.

Values that come from data or config (class names, run and model names, paths, summaries
written by other tools) go through ``escape_markdown`` or ``markdown_code``, so a name such as
``<img src=x onerror=...>`` or ``[click](http://...)`` reads as the text it is and never
becomes markup, a link or a new line of the card.
"""

from __future__ import annotations

import re
from typing import Any

#: Characters that start inline markup (emphasis, code, links, images, raw HTML, entities,
#: tables, strikethrough, headings); a backslash before any ASCII punctuation makes it literal.
_SPECIAL = re.compile(r"([\\`*{}\[\]<>#!|~&])")
#: ``_`` except inside a word (``logistic_regression``), where it never marks emphasis.
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def _one_line(text: str) -> str:
    return _LINE_BREAKS.sub(" ", text)


def escape_markdown(value: Any) -> str:
    """``value`` as literal Markdown text on one line: markup characters backslash-escaped,
    line breaks turned into spaces.

    Example:
        >>> escape_markdown("_a_b_ <script>")
        '\\\\_a_b\\\\_ \\\\<script\\\\>'
    """
    return _UNDERSCORE.sub(r"\\_", _SPECIAL.sub(r"\\\1", _one_line(str(value))))


def markdown_code(value: Any) -> str:
    """``value`` as an inline code span (shown verbatim, never markup), fenced with more
    backticks than it holds."""
    text = _one_line(str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """The lines of a Markdown table: ``header``, the rule, then one line per row (each
    header and cell as literal text, ``escape_markdown``)."""
    lines = [
        "| " + " | ".join(escape_markdown(h) for h in header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(escape_markdown(cell) for cell in row) + " |" for row in rows]
    return lines
