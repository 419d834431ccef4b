"""Detectors and instance segmenters: torchvision's Faster R-CNN, RetinaNet, FCOS and Mask
R-CNN on a feature pyramid over any medlens classifier's stages, built by
``create_detector``."""

from medlens.models.detection.detector import Detector
from medlens.models.detection.factory import create_detector, detector_from_config
from medlens.models.detection.options import DetectorOptions

__all__ = ["Detector", "DetectorOptions", "create_detector", "detector_from_config"]
