"""``create_model``: the one entry point from a config name to a ready ``Classifier``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, cast

from medlens.errors import ConfigError
from medlens.models.classifier import Classifier
from medlens.models.init_weights import load_init_weights
from medlens.models.registry import MODELS, BuildOptions

SMALL_INPUT_THRESHOLD = 64
_WEIGHT_SOURCES = ("pretrained", "init")


def create_model(
    name: str,
    in_channels: int = 1,
    num_classes: int = 2,
    spatial_dims: int = 2,
    pretrained: str | None = None,
    init: str | Path | None = None,
    input_size: int | None = None,
    cifar_stem: bool | None = None,
    dropout: float = 0.0,
    channels: list[int] | tuple[int, ...] | None = None,
    deep_supervision: bool = False,
    stem_stride: int = 1,
) -> Classifier:
    """Build the registered classifier ``name``.

    Args:
        name: a name of ``MODELS`` (``small_cnn``, ``lenet5``, ``resnet18``, ``densenet121``...).
        in_channels: image channels; pretrained first convolutions are adapted (summed for 1,
            repeated for more).
        num_classes: logits width.
        spatial_dims: 2 (images) or 3 (volumes), as the entry supports.
        pretrained: ``"imagenet"`` loads the library's ImageNet weights (2D only).
        init: a medlens checkpoint (or raw state_dict) to start from; see ``load_init_weights``.
        input_size: the shortest side of the inputs, in pixels (voxels); decides ``cifar_stem``.
        cifar_stem: small-input stem (3x3 stride-1 convolution, no max-pool for ResNet/DenseNet,
            a stride-1 stem for EfficientNet). None: automatic, True when ``input_size`` < 64.
            Nets with a hard minimum input (VGG 32 px, AlexNet 63, GoogLeNet 15,
            Inception-v3 75) upsample smaller inputs to it whatever this says.
        dropout: dropout probability before the last linear layer.
        channels: feature channels per level of a U-Net-style segmenter (``unet``,
            ``residual_unet``, ``attention_unet``; at least 3, default (16, 32, 64, 128)), or
            per convolution block of ``small_cnn`` (default (32, 64)).
        deep_supervision: ``unet_plus_plus`` returns, in training mode, the logits of its
            four nested decoders (final first) for a deeply supervised loss; evaluation mode
            still returns the final logits alone.
        stem_stride: the first convolution's stride, 1 or 2. ``small_cnn`` with 2 samples its
            first convolution every second voxel in place of the max pool after it: the same
            resolutions after the first block at a fraction of the cost on large inputs
            (Springenberg et al. 2015, "Striving for simplicity"). Other entries refuse 2.

    Returns:
        The classifier; ``model.config`` holds these arguments (``cifar_stem`` resolved),
        ``model.init_report`` what ``init`` loaded and skipped.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: an argument the entry cannot honour.
        ModelWeightsError: ImageNet weights not cached on an offline machine.
        InputError: an ``init`` checkpoint that is unreadable or of another architecture.

    Example:
        >>> model = create_model("resnet18", in_channels=1, num_classes=2, input_size=28)
        >>> model.config["cifar_stem"]
        True
    """
    entry = MODELS.get(name)
    if entry.task == "detection":
        raise ConfigError(
            "model.name",
            f"{name} is a detector; build it with medlens.models.detection.create_detector",
        )
    if spatial_dims not in entry.spatial_dims:
        supported = " or ".join(f"{d}D" for d in entry.spatial_dims)
        raise ConfigError(
            "model.spatial_dims", f"{name} is built for {supported}, not {spatial_dims}D"
        )
    _check_positive("model.in_channels", in_channels)
    _check_positive("model.num_classes", num_classes)
    if input_size is not None:
        _check_positive("model.input_size", input_size)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError("model.dropout", f"must be in [0, 1), got {dropout}")
    if pretrained not in (None, "imagenet"):
        raise ConfigError("model.pretrained", f"must be 'imagenet' or empty, got {pretrained!r}")
    if pretrained and spatial_dims not in entry.pretrained_dims:
        what = f"{spatial_dims}D {name}" if entry.pretrained_dims else name
        raise ConfigError(
            "model.pretrained",
            f"no ImageNet weights exist for {what}; train from scratch or use init",
        )
    if pretrained and init is not None:
        raise ConfigError(
            "model.init",
            "give either pretrained or init: init weights would replace the ImageNet ones",
        )
    if channels is not None and not entry.takes_channels:
        raise ConfigError("model.channels", f"{name} has no per-level channels to set")
    if channels is not None and len(channels) < entry.min_channel_levels:
        raise ConfigError(
            "model.channels",
            f"{name} needs at least {entry.min_channel_levels} levels, got {list(channels)}",
        )
    for width in channels or ():
        _check_positive("model.channels", width)
    if deep_supervision and not entry.takes_deep_supervision:
        takers = [n for n in MODELS.names() if MODELS.get(n).takes_deep_supervision]
        raise ConfigError(
            "model.deep_supervision",
            f"{name} has no auxiliary decoders to supervise (models that have: {', '.join(takers)})",
        )
    if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
        raise ConfigError("model.stem_stride", f"must be 1 or 2, got {stem_stride!r}")
    if stem_stride != 1 and not entry.takes_stem_stride:
        takers = [n for n in MODELS.names() if MODELS.get(n).takes_stem_stride]
        raise ConfigError(
            "model.stem_stride",
            f"{name} has no stem stride to set (models that have: {', '.join(takers)})",
        )
    if cifar_stem is None:
        cifar_stem = input_size is not None and input_size < SMALL_INPUT_THRESHOLD
    opts = BuildOptions(
        in_channels=int(in_channels),
        num_classes=int(num_classes),
        spatial_dims=int(spatial_dims),
        pretrained=pretrained == "imagenet",
        small_input_stem=bool(cifar_stem),
        dropout=float(dropout),
        channels=tuple(int(c) for c in channels) if channels is not None else None,
        deep_supervision=bool(deep_supervision),
        stem_stride=int(stem_stride),
    )
    # A segmentation entry builds a Segmenter, which answers the same weight-loading calls
    # (head, first_conv, config); callers of a segmentation name use it as one.
    model = cast(Classifier, entry.builder(opts))
    model.config = {
        "name": name,
        "in_channels": opts.in_channels,
        "num_classes": opts.num_classes,
        "spatial_dims": opts.spatial_dims,
        "pretrained": pretrained,
        "init": str(init) if init is not None else None,
        "input_size": input_size,
        "cifar_stem": opts.small_input_stem,
        "dropout": opts.dropout,
        "channels": list(opts.channels) if opts.channels is not None else None,
        "deep_supervision": opts.deep_supervision,
        "stem_stride": opts.stem_stride,
    }
    if init is not None:
        model.init_report = load_init_weights(model, init)
    return model


def model_from_config(config: dict[str, Any]) -> Classifier:
    """Rebuild the architecture a checkpoint's ``model_config`` describes, without its weights.

    The weight sources (``pretrained``, ``init``) are dropped: the caller loads the
    checkpoint's state_dict into the returned model.
    """
    unknown = sorted(set(config) - set(inspect.signature(create_model).parameters))
    if unknown:
        raise ConfigError("model_config", f"unknown create_model arguments: {', '.join(unknown)}")
    return create_model(**{k: v for k, v in config.items() if k not in _WEIGHT_SOURCES})


def _check_positive(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"must be a positive integer, got {value!r}")
