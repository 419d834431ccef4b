"""Segmentation: a label per voxel, scored on each image's own grid."""

from __future__ import annotations

from pathlib import Path

from medlens.tasks.base import Task

SEGMENTATION = Task(
    name="segmentation",
    summary="a label per voxel, predicted with sliding windows and mapped back to the image",
    data_formats=frozenset({"segmentation"}),
    predicts_masks=True,
    explainable=False,
    takes_features_section=False,
    route="/v1/segment",
    predict_output=Path("masks"),
    predict_options=frozenset({"skip_bad", "mask_format", "quiet", "uncertainty"}),
    trust_sections=frozenset({"calibration"}),
    calibration_methods=("temperature", "none"),  # one temperature per voxel, or none
)
