"""What a detector builder is asked for (``create_detector`` resolves and checks it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorOptions:
    """The settings of one detector.

    Attributes:
        num_classes: object classes (the background is added inside).
        in_channels: image channels.
        backbone: the registered classifier whose stages feed the pyramid.
        pretrained: ``imagenet`` backbone weights, ``coco`` whole-detector weights, or None.
        backbone_init: a medlens classifier checkpoint that initialises the backbone.
        anchor_sizes: one size per pyramid level, in pixels (None: the family's default).
        aspect_ratios: anchor height / width.
        fpn_channels: the pyramid's width.
        box_head_size: width of the R-CNN box head.
        proposals_train, proposals_test: region proposals kept per image (R-CNN).
        roi_batch_size: proposals sampled per image to train the R-CNN heads.
        score_threshold: detections scoring lower are dropped.
        nms_iou: IoU of same-class non-maximum suppression.
        max_detections: per image.
        imagenet_normalisation: normalise inputs with ImageNet's mean and standard deviation.
    """

    num_classes: int
    in_channels: int = 3
    backbone: str = "resnet50"
    pretrained: str | None = None
    backbone_init: str | None = None
    anchor_sizes: tuple[int, ...] | None = None
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    fpn_channels: int = 256
    box_head_size: int = 1024
    proposals_train: int = 2000
    proposals_test: int = 1000
    roi_batch_size: int = 512
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100
    imagenet_normalisation: bool = False
