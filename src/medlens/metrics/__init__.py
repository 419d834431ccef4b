"""Metrics with confidence intervals: classification (scikit-learn), calibration, thresholds."""

from medlens.metrics.bootstrap import bootstrap_ci
from medlens.metrics.evaluate import evaluate_predictions
from medlens.metrics.registry import METRICS
from medlens.metrics.threshold import choose_threshold, predict_labels

__all__ = ["METRICS", "bootstrap_ci", "choose_threshold", "evaluate_predictions", "predict_labels"]
