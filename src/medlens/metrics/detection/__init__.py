"""Detection metrics: COCO AP/AR (equal to pycocotools), FROC, object-wise F1, counts, and
bootstrap CIs over images; mask AP for instance segmentation."""

from medlens.metrics.detection.evaluate import ap_metrics, evaluate_detections
from medlens.metrics.detection.froc import DEFAULT_FPS, froc
from medlens.metrics.detection.matching import COCO_IOUS, match_images
from medlens.metrics.detection.objects import DetectedObjects, ReferenceObjects
from medlens.metrics.detection.operating_point import best_f1_threshold

__all__ = [
    "COCO_IOUS",
    "DEFAULT_FPS",
    "DetectedObjects",
    "ReferenceObjects",
    "ap_metrics",
    "best_f1_threshold",
    "evaluate_detections",
    "froc",
    "match_images",
]
