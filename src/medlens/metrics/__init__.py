"""Metrics: classification with confidence intervals, calibration and thresholds;
segmentation overlap and surface distances in mm; image quality (PSNR, SSIM)."""

from medlens.metrics.bootstrap import bootstrap_ci
from medlens.metrics.evaluate import evaluate_predictions
from medlens.metrics.image_quality import psnr, ssim
from medlens.metrics.registry import METRICS
from medlens.metrics.segmentation import SEGMENTATION_METRICS, evaluate_segmentation, summarize
from medlens.metrics.surface import surface_metrics
from medlens.metrics.threshold import choose_threshold, predict_labels

__all__ = [
    "METRICS",
    "SEGMENTATION_METRICS",
    "bootstrap_ci",
    "choose_threshold",
    "evaluate_predictions",
    "evaluate_segmentation",
    "predict_labels",
    "psnr",
    "ssim",
    "summarize",
    "surface_metrics",
]
