"""Markdown pieces shared by the model cards."""

from __future__ import annotations

from typing import Any


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """The lines of a Markdown table: ``header``, the rule, then one line per row (each
    cell as ``str``, a ``|`` in it escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows
    ]
    return lines
