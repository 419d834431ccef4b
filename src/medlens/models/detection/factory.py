"""``create_detector``: a registered detector name (``faster_rcnn``, ``mask_rcnn``...) and its
settings to a ready ``Detector``, with its weights from COCO, ImageNet or a medlens run."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, cast

from medlens.errors import ConfigError, InputError
from medlens.models.detection.builders import DETECTORS, family_of
from medlens.models.detection.detector import Detector
from medlens.models.detection.options import DetectorOptions
from medlens.models.registry import MODELS

_WEIGHT_SOURCES = ("pretrained", "init")


def _checkpoint_model_name(path: Path) -> str | None:
    from medlens.models.init_weights import load_weights_only

    if not path.is_file():
        raise InputError(path, "init checkpoint not found")
    obj = load_weights_only(path)
    config = obj.get("model_config") if isinstance(obj, dict) else None
    return str(config.get("name")) if isinstance(config, dict) and config.get("name") else None


def create_detector(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    backbone: str | None = None,
    pretrained: str | None = None,
    init: str | Path | None = None,
    anchor_sizes: list[int] | tuple[int, ...] | None = None,
    aspect_ratios: list[float] | tuple[float, ...] = (0.5, 1.0, 2.0),
    fpn_channels: int = 256,
    box_head_size: int = 1024,
    proposals_train: int = 2000,
    proposals_test: int = 1000,
    roi_batch_size: int = 512,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    normalisation: str | None = None,
) -> Detector:
    """Build the registered detector ``name``.

    Args:
        name: a detection name of ``MODELS`` (``faster_rcnn``, ``faster_rcnn_mobilenet_v3``,
            ``retinanet``, ``fcos``, ``mask_rcnn``).
        num_classes: object classes (without the background).
        in_channels: image channels.
        backbone: a registered classifier (None: the detector's default, see ``DETECTORS``).
        pretrained: ``imagenet`` (backbone weights from timm) or ``coco`` (the whole detector
            from torchvision, where published); both offline-safe with a clear error.
        init: a medlens checkpoint: a classifier's (it initialises the backbone: transfer
            learning from a medlens run, e.g. self-supervised or crop-classification
            pre-training on the same images) or a detector's (every tensor that fits).
        anchor_sizes: one size per pyramid level (pixels; None: the family's default).
        aspect_ratios, fpn_channels, box_head_size, proposals_train, proposals_test,
        roi_batch_size, score_threshold, nms_iou, max_detections: see ``DetectorOptions``.
        normalisation: ``imagenet`` (the mean and standard deviation ImageNet and COCO
            weights expect on [0, 1] images) or ``none``; None: ``imagenet`` exactly when
            ``pretrained`` is given. Recorded, so a rebuilt detector normalises alike.

    Returns:
        The detector; ``config`` holds these arguments (``backbone`` resolved), and
        ``init_report`` what the weights loaded.

    Raises:
        UnknownNameError: an unregistered name.
        ConfigError: a name of another task, a bad argument, both ``pretrained`` and
            ``init``, or COCO weights torchvision does not publish.
        ModelWeightsError: weights not cached on an offline machine.
        InputError: an unreadable ``init`` checkpoint or one of another architecture.

    Example:
        >>> model = create_detector("faster_rcnn", num_classes=3, backbone="resnet18")
        >>> model.config["backbone"]
        'resnet18'
    """
    entry = MODELS.get(name)
    if entry.task != "detection":
        raise ConfigError("model.name", f"{name} is a {entry.task} model, not a detector")
    if num_classes < 1:
        raise ConfigError("model.num_classes", f"must be at least 1, got {num_classes}")
    if pretrained not in (None, "imagenet", "coco"):
        raise ConfigError(
            "model.pretrained", f"must be imagenet, coco or empty, not {pretrained!r}"
        )
    if pretrained and init is not None:
        raise ConfigError("model.init", "give either pretrained or init, not both")
    if normalisation is None:
        normalisation = "imagenet" if pretrained else "none"
    if normalisation not in ("imagenet", "none"):
        raise ConfigError("normalisation", f"must be imagenet or none, not {normalisation!r}")
    family_name, default_backbone = DETECTORS[name]
    backbone = backbone or default_backbone
    if backbone not in MODELS or MODELS.get(backbone).task != "classification":
        raise ConfigError(
            "model.backbone", f"{backbone} is not a registered classifier to build a pyramid on"
        )
    init_path = Path(init) if init is not None else None
    whole = init_path is not None and _checkpoint_model_name(init_path) in DETECTORS
    opts = DetectorOptions(
        num_classes=int(num_classes),
        in_channels=int(in_channels),
        backbone=backbone,
        pretrained=pretrained,
        backbone_init=str(init_path) if init_path is not None and not whole else None,
        anchor_sizes=tuple(int(s) for s in anchor_sizes) if anchor_sizes else None,
        aspect_ratios=tuple(float(r) for r in aspect_ratios),
        fpn_channels=int(fpn_channels),
        box_head_size=int(box_head_size),
        proposals_train=int(proposals_train),
        proposals_test=int(proposals_test),
        roi_batch_size=int(roi_batch_size),
        score_threshold=float(score_threshold),
        nms_iou=float(nms_iou),
        max_detections=int(max_detections),
        imagenet_normalisation=normalisation == "imagenet",
    )
    if pretrained == "coco":
        from medlens.models.detection.coco_weights import published

        if not published(family_name, backbone):
            from medlens.models.detection.coco_weights import torchvision_coco_model

            torchvision_coco_model(family_name, backbone)  # raises the ConfigError
    detector = cast(Detector, entry.builder(opts))  # type: ignore[arg-type]
    if pretrained == "coco":
        from medlens.models.detection.coco_weights import load_coco_weights

        detector.init_report = load_coco_weights(detector, family_name, backbone)
    if whole:
        assert init_path is not None
        detector.init_report = _load_detector_checkpoint(detector, init_path)
    detector.config = {
        "name": name,
        "num_classes": opts.num_classes,
        "in_channels": opts.in_channels,
        "backbone": backbone,
        "pretrained": pretrained,
        "init": str(init_path) if init_path is not None else None,
        "anchor_sizes": list(opts.anchor_sizes) if opts.anchor_sizes else None,
        "aspect_ratios": list(opts.aspect_ratios),
        "fpn_channels": opts.fpn_channels,
        "box_head_size": opts.box_head_size,
        "proposals_train": opts.proposals_train,
        "proposals_test": opts.proposals_test,
        "roi_batch_size": opts.roi_batch_size,
        "score_threshold": opts.score_threshold,
        "nms_iou": opts.nms_iou,
        "max_detections": opts.max_detections,
        "normalisation": normalisation,
    }
    assert family_of(name).masks == detector.predicts_masks
    return detector


def _load_detector_checkpoint(detector: Detector, path: Path) -> dict[str, Any]:
    from medlens.models.detection.coco_weights import transfer_state
    from medlens.models.errors import ModelWeightsError
    from medlens.models.init_weights import load_weights_only

    obj = load_weights_only(path)
    state = {k.removeprefix("net."): v for k, v in obj["model"].items()}
    try:
        return transfer_state(detector, state, str(path))
    except ModelWeightsError as exc:
        raise InputError(path, exc.reason) from None


def detector_from_config(config: dict[str, Any]) -> Detector:
    """Rebuild the architecture a checkpoint's ``model_config`` describes, without weights
    (the caller loads the checkpoint's state_dict).

    Raises:
        ConfigError: an argument ``create_detector`` does not take.
    """
    unknown = sorted(set(config) - set(inspect.signature(create_detector).parameters))
    if unknown:
        raise ConfigError(
            "model_config", f"unknown create_detector arguments: {', '.join(unknown)}"
        )
    return create_detector(**{k: v for k, v in config.items() if k not in _WEIGHT_SOURCES})
