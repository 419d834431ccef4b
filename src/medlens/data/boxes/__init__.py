"""Object annotations: Pascal VOC XML, COCO JSON, CSV box tables and instance masks, read
into one form (``ImageRecord``) and opened as a ``DetectionSource`` for ``task: detection``."""

from medlens.data.boxes.records import AnnotatedObject, BadObject, ImageRecord
from medlens.data.boxes.source import DetectionSource, Targets, open_detection_source

__all__ = [
    "AnnotatedObject",
    "BadObject",
    "DetectionSource",
    "ImageRecord",
    "Targets",
    "open_detection_source",
]
