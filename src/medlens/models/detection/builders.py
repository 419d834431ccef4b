"""The registered detectors (``model.name`` with ``task: detection``).

Each is a torchvision detection model on a ``PyramidBackbone`` over a medlens classifier
(``model.backbone``; the default below). Faster R-CNN and Mask R-CNN read the stages at
strides 4-32 and add a max-pooled level (P2-P6, one anchor size per level and three aspect
ratios, 32 to 512 px by default); RetinaNet and FCOS read strides 8-32 and add two
convolutional levels (P3-P7). RetinaNet puts three scales per level (s, s 2^1/3, s 2^2/3); FCOS
has one point per location, and assigns objects of about 4 to 8 times a level's size to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from medlens.errors import ConfigError
from medlens.models.detection.detector import BatchOnlyTransform, Detector, normalisation
from medlens.models.detection.options import DetectorOptions
from medlens.models.detection.pyramid import PyramidBackbone
from medlens.models.registry import Builder, register_model


@dataclass(frozen=True)
class Family:
    """How one detector family is put together.

    Attributes:
        strides: the backbone strides its pyramid reads.
        extra: the levels it adds (``pool`` or ``p6p7``).
        anchor_sizes: default size per pyramid level (pixels).
        masks: it predicts instance masks.
    """

    strides: tuple[int, ...]
    extra: str
    anchor_sizes: tuple[int, ...]
    masks: bool = False

    @property
    def levels(self) -> int:
        return len(self.strides) + (1 if self.extra == "pool" else 2)


FAMILIES = {
    "faster_rcnn": Family((4, 8, 16, 32), "pool", (32, 64, 128, 256, 512)),
    "mask_rcnn": Family((4, 8, 16, 32), "pool", (32, 64, 128, 256, 512), masks=True),
    "retinanet": Family((8, 16, 32), "p6p7", (32, 64, 128, 256, 512)),
    "fcos": Family((8, 16, 32), "p6p7", (8, 16, 32, 64, 128)),
}
#: registered name -> (family, default backbone).
DETECTORS = {
    "faster_rcnn": ("faster_rcnn", "resnet50"),
    "faster_rcnn_mobilenet_v3": ("faster_rcnn", "mobilenetv3_large_100"),
    "retinanet": ("retinanet", "resnet50"),
    "fcos": ("fcos", "resnet50"),
    "mask_rcnn": ("mask_rcnn", "resnet50"),
}


def anchor_sizes(family: Family, opts: DetectorOptions) -> tuple[int, ...]:
    """The configured sizes, one per pyramid level, or the family's.

    Raises:
        ConfigError: keyed ``detection.anchor_sizes`` when the count differs from the levels.
    """
    sizes = opts.anchor_sizes or family.anchor_sizes
    if len(sizes) != family.levels:
        raise ConfigError(
            "detection.anchor_sizes",
            f"needs {family.levels} sizes, one per pyramid level (finest first), got {len(sizes)}",
        )
    return tuple(int(s) for s in sizes)


def _pyramid(family: Family, opts: DetectorOptions) -> PyramidBackbone:
    from medlens.models.factory import create_model

    classifier = create_model(
        opts.backbone,
        in_channels=opts.in_channels,
        num_classes=2,  # the classifier's head is not used
        pretrained="imagenet" if opts.pretrained == "imagenet" else None,
        init=opts.backbone_init,
        cifar_stem=False,
    )
    backbone = PyramidBackbone(classifier, family.strides, opts.fpn_channels, family.extra)
    backbone.init_report = classifier.init_report  # type: ignore[assignment]
    return backbone


def _common(opts: DetectorOptions) -> dict[str, Any]:
    mean, std = normalisation(opts.in_channels, opts.imagenet_normalisation)
    return {"image_mean": mean, "image_std": std, "min_size": 1, "max_size": 1}


def _finish(
    net: Any, opts: DetectorOptions, family_name: str, backbone: PyramidBackbone
) -> Detector:
    mean, std = normalisation(opts.in_channels, opts.imagenet_normalisation)
    net.transform = BatchOnlyTransform(1, 1, mean, std)
    family = FAMILIES[family_name]
    detector = Detector(net, family_name, opts.num_classes, family.masks)
    detector.init_report = getattr(backbone, "init_report", None)
    return detector


def _rcnn(family_name: str, opts: DetectorOptions) -> Detector:
    family = FAMILIES[family_name]
    backbone = _pyramid(family, opts)
    channels = backbone.out_channels
    sizes = anchor_sizes(family, opts)
    kwargs: dict[str, Any] = {
        "rpn_anchor_generator": AnchorGenerator(
            tuple((s,) for s in sizes), (tuple(opts.aspect_ratios),) * len(sizes)
        ),
        "box_head": TwoMLPHead(channels * 7 * 7, opts.box_head_size),
        "box_predictor": FastRCNNPredictor(opts.box_head_size, opts.num_classes + 1),
        "rpn_pre_nms_top_n_train": opts.proposals_train,
        "rpn_post_nms_top_n_train": opts.proposals_train,
        "rpn_pre_nms_top_n_test": opts.proposals_test,
        "rpn_post_nms_top_n_test": opts.proposals_test,
        "box_batch_size_per_image": opts.roi_batch_size,
        "box_score_thresh": opts.score_threshold,
        "box_nms_thresh": opts.nms_iou,
        "box_detections_per_img": opts.max_detections,
        **_common(opts),
    }
    if family.masks:
        kwargs["mask_head"] = MaskRCNNHeads(channels, (channels,) * 4, 1)
        kwargs["mask_predictor"] = MaskRCNNPredictor(channels, channels, opts.num_classes + 1)
        net: Any = MaskRCNN(backbone, num_classes=None, **kwargs)
    else:
        net = FasterRCNN(backbone, num_classes=None, **kwargs)
    return _finish(net, opts, family_name, backbone)


def _retinanet(opts: DetectorOptions) -> Detector:
    family = FAMILIES["retinanet"]
    backbone = _pyramid(family, opts)
    sizes = anchor_sizes(family, opts)
    scales = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in sizes)
    anchors = AnchorGenerator(scales, (tuple(opts.aspect_ratios),) * len(sizes))
    net = RetinaNet(
        backbone,
        num_classes=opts.num_classes + 1,
        anchor_generator=anchors,
        score_thresh=opts.score_threshold,
        nms_thresh=opts.nms_iou,
        detections_per_img=opts.max_detections,
        **_common(opts),
    )
    return _finish(net, opts, "retinanet", backbone)


def _fcos(opts: DetectorOptions) -> Detector:
    family = FAMILIES["fcos"]
    if opts.fpn_channels % 32:
        raise ConfigError(
            "detection.fpn_channels",
            f"FCOS's heads group-normalise 32 groups: needs a multiple of 32, got {opts.fpn_channels}",
        )
    backbone = _pyramid(family, opts)
    sizes = anchor_sizes(family, opts)
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * len(sizes))
    net = FCOS(
        backbone,
        num_classes=opts.num_classes + 1,
        anchor_generator=anchors,
        score_thresh=opts.score_threshold,
        nms_thresh=opts.nms_iou,
        detections_per_img=opts.max_detections,
        **_common(opts),
    )
    return _finish(net, opts, "fcos", backbone)


_BUILDERS: dict[str, Callable[[DetectorOptions], Detector]] = {
    "faster_rcnn": lambda opts: _rcnn("faster_rcnn", opts),
    "mask_rcnn": lambda opts: _rcnn("mask_rcnn", opts),
    "retinanet": _retinanet,
    "fcos": _fcos,
}


def family_of(name: str) -> Family:
    """The family of a registered detector name."""
    return FAMILIES[DETECTORS[name][0]]


def _register(name: str, family: str) -> None:
    def build(opts: DetectorOptions) -> nn.Module:
        return _BUILDERS[family](opts)

    build.__doc__ = f"{name}: torchvision's {family} on a medlens feature pyramid."
    register_model(name, spatial_dims=(2,), task="detection")(cast(Builder, build))


for _name, (_family, _backbone) in DETECTORS.items():
    _register(_name, _family)
