"""COCO weights for the detectors torchvision publishes them for, through the offline-safe
loader of ``medlens.models.pretrained``, moved into the medlens detector by tensor name.

torchvision's ResNet-50 FPN detectors name their tensors as the medlens pyramid does (timm's
ResNet keeps torchvision's names), so every tensor but the class-specific predictors loads.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medlens.errors import ConfigError
from medlens.models.errors import ModelWeightsError

#: (family, backbone) -> (torchvision builder, its weights enum)
_PUBLISHED = {
    ("faster_rcnn", "resnet50"): ("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights"),
    ("mask_rcnn", "resnet50"): ("maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights"),
    ("retinanet", "resnet50"): ("retinanet_resnet50_fpn", "RetinaNet_ResNet50_FPN_Weights"),
    ("fcos", "resnet50"): ("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights"),
}
#: Below this share of the detector's tensors loaded, the weights do not fit it.
MIN_LOADED = 0.8


def published(family: str, backbone: str) -> bool:
    """Whether torchvision publishes COCO weights for this family and backbone."""
    return (family, backbone) in _PUBLISHED


def torchvision_coco_model(
    family: str, backbone: str, weights: Any | None = "COCO_V1"
) -> nn.Module:
    """torchvision's detector of this family and backbone, with its COCO weights (None:
    randomly initialised, the same tensors).

    Raises:
        ConfigError: keyed ``model.pretrained`` when torchvision publishes none for it.
        ModelWeightsError: the weights are not cached and this machine is offline.
    """
    import torchvision.models.detection as tv

    from medlens.models.pretrained import create_torchvision_pretrained

    if (family, backbone) not in _PUBLISHED:
        choices = ", ".join(f"{f} on {b}" for f, b in _PUBLISHED)
        raise ConfigError(
            "model.pretrained",
            f"torchvision publishes COCO weights for {choices}, not {family} on {backbone}; "
            "use pretrained: imagenet (backbone only) or init",
        )
    builder_name, weights_name = _PUBLISHED[(family, backbone)]
    builder = getattr(tv, builder_name)
    if weights is None:
        return builder(weights=None, weights_backbone=None)
    enum = getattr(getattr(tv, weights_name), str(weights))
    return create_torchvision_pretrained(builder_name, builder, enum)


def load_coco_weights(detector: nn.Module, family: str, backbone: str) -> dict[str, Any]:
    """Copy torchvision's COCO weights into ``detector`` by name and shape (the predictors of
    another class count keep their fresh initialisation).

    Returns:
        ``{"source", "loaded", "skipped"}``.

    Raises:
        ModelWeightsError: the weights are not cached and this machine is offline, or fewer
            than ``MIN_LOADED`` of the detector's tensors fit them.
    """
    coco = torchvision_coco_model(family, backbone)
    return transfer_state(detector, coco.state_dict(), f"torchvision COCO {family} {backbone}")


def transfer_state(
    detector: nn.Module, state: dict[str, torch.Tensor], source: str
) -> dict[str, Any]:
    """Load the tensors of ``state`` (torchvision's names) that fit ``detector`` (whose
    torchvision model is ``detector.net``)."""
    target = detector.state_dict()
    loaded, skipped = [], []
    for key, value in state.items():
        ours = f"net.{key}"
        if ours in target and target[ours].shape == value.shape:
            target[ours] = value.to(target[ours].dtype)
            loaded.append(ours)
        else:
            skipped.append(key)
    # BatchNorm's step counters are absent from frozen-BN checkpoints and carry no weights
    weights = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(loaded) < MIN_LOADED * len(weights):
        raise ModelWeightsError(
            source, f"only {len(loaded)} of the detector's {len(weights)} tensors fit these weights"
        )
    detector.load_state_dict(target)
    return {"source": source, "loaded": len(loaded), "skipped": skipped}
