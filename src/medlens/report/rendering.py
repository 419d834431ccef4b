"""What every report page is rendered with: the Jinja2 templates of ``report/templates/``
and figures embedded as base64 PNG, so a page loads nothing from elsewhere."""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def template_environment() -> Environment:
    """The Jinja2 environment of the report pages: templates from ``medlens.report``'s
    ``templates/`` folder (each page extends ``base.html``), HTML autoescaped, and an
    undefined variable an error rather than an empty string."""
    return Environment(
        loader=PackageLoader("medlens.report", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def png_data_uri(png: str | Path | bytes) -> str:
    """A PNG as a ``data:`` URI for an ``<img src>``: the file at ``png``, or the bytes of
    one drawn in memory."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
