"""report.html and model_card.md of detection runs."""
