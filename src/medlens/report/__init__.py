"""What a person reads about a run: figures, report.html and model_card.md."""

from medlens.report.html import write_report
from medlens.report.model_card import write_model_card

__all__ = ["write_model_card", "write_report"]
