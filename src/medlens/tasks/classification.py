"""Classification: one class per case (an image, a volume, a DICOM series)."""

from __future__ import annotations

from pathlib import Path

from medlens.tasks.base import Task

CLASSIFICATION = Task(
    name="classification",
    summary="one class per case, with probabilities and a threshold chosen on validation",
    data_formats=frozenset({"medmnist", "folder", "csv", "dicom"}),
    predicts_masks=False,
    explainable=True,
    takes_features_section=True,
    route="/v1/predict",
    predict_output=Path("predictions.csv"),
    predict_options=frozenset(
        {
            "skip_bad",
            "batch_size",
            "engine",
            "address",
            "workers",
            "quiet",
            "uncertainty",
            "adapt_prior",
        }
    ),
    trust_sections=frozenset({"calibration", "refer", "ood"}),
)
