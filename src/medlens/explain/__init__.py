"""Explanations of classification runs: saliency and CAM heatmaps, 2D and 3D, and checks
that they are faithful to the model (deletion/insertion curves, weight randomisation).

Example:
    >>> from medlens.explain import explain, explain_run
    >>> heatmaps = explain(model, x, target=1, method="gradcam")  # doctest: +SKIP
    >>> results = explain_run("runs/pneumonia", ["chest.png"], method="smoothgrad")  # doctest: +SKIP
"""

from medlens.explain.explain_run import ExplanationResult, explain_run
from medlens.explain.faithfulness import (
    PerturbationCurve,
    deletion_curve,
    insertion_curve,
    random_heatmaps,
)
from medlens.explain.faithfulness_report import (
    faithfulness_report,
    faithfulness_scores,
    summarize_faithfulness,
)
from medlens.explain.gallery import GalleryFigure, explanation_gallery
from medlens.explain.heatmaps import explain
from medlens.explain.overlay import save_overlay
from medlens.explain.randomization import cascading_randomization, randomization_check
from medlens.explain.registry import EXPLAINERS, register_explainer

__all__ = [
    "EXPLAINERS",
    "ExplanationResult",
    "GalleryFigure",
    "PerturbationCurve",
    "cascading_randomization",
    "deletion_curve",
    "explain",
    "explain_run",
    "explanation_gallery",
    "faithfulness_report",
    "faithfulness_scores",
    "insertion_curve",
    "random_heatmaps",
    "randomization_check",
    "register_explainer",
    "save_overlay",
    "summarize_faithfulness",
]
