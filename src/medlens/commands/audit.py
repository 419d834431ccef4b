"""``medlens audit RUN --groups ...``: the subgroup audit of a run's test predictions
(``medlens.audit``), stored as the run's ``fairness`` report section."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medlens.errors import ConfigError


def parse_age_bins(text: str | None) -> dict[str, list[float]] | None:
    """``"0,40,65,inf"`` -> ``{"age": [0.0, 40.0, 65.0, inf]}`` (edges in years).

    Raises:
        ConfigError: keyed ``--age-bins`` when a value is not a number.
    """
    if not text:
        return None
    try:
        return {"age": [float(v) for v in text.split(",")]}
    except ValueError:
        raise ConfigError("--age-bins", f"{text!r}: expected numbers separated by commas") from None


def audit_command(
    run_dir: Path,
    groups: Sequence[str],
    positive_class: str | None = None,
    mitigate: Sequence[str] = (),
    age_bins: str | None = None,
    n_bootstrap: int = 1000,
    min_group_size: int = 30,
    seed: int = 0,
) -> Any:
    """Audit the run, write ``audit.json``, and add the fairness section to its report.

    Returns:
        The ``AuditResult`` (its ``summary`` and ``flagged()`` gaps are what the CLI prints).
    """
    from medlens.audit import audit_run
    from medlens.audit.section import audit_section_html, audit_section_markdown
    from medlens.report.documents import add_report_section

    result = audit_run(
        run_dir,
        list(groups),
        positive_class=positive_class,
        mitigate=list(mitigate),
        bins=parse_age_bins(age_bins),
        n_bootstrap=n_bootstrap,
        min_group_size=min_group_size,
        seed=seed,
    )
    add_report_section(
        run_dir, "fairness", audit_section_html(result, run_dir), audit_section_markdown(result)
    )
    return result
