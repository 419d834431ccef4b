"""The model registry: config names -> builders, each declaring the spatial dims it supports."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from medlens.registry import Registry

if TYPE_CHECKING:
    from medlens.models.classifier import Classifier
    from medlens.models.segmenter import Segmenter


@dataclass(frozen=True)
class BuildOptions:
    """What a builder is asked for, validated and resolved by ``create_model``.

    Attributes:
        in_channels: image channels (1 for CT/X-ray, 3 for RGB).
        num_classes: logits width.
        spatial_dims: 2 or 3.
        pretrained: load ImageNet weights.
        small_input_stem: adapt the stem to small inputs (under 64 px/voxels).
        dropout: probability of the dropout before the last linear layer.
        channels: feature channels per resolution level of a U-Net-style segmenter (None:
            the entry's default); entries without levels refuse it.
        deep_supervision: in training mode, also return the logits of the auxiliary decoders
            (a list, final first); entries without them refuse it.
        stem_stride: the stride of the first convolution (1 or 2); entries without a
            settable stem refuse 2.
    """

    in_channels: int
    num_classes: int
    spatial_dims: int
    pretrained: bool
    small_input_stem: bool
    dropout: float
    channels: tuple[int, ...] | None = None
    deep_supervision: bool = False
    stem_stride: int = 1


Builder = Callable[[BuildOptions], "Classifier | Segmenter"]


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: the config name (``model.name``).
        builder: makes the network from ``BuildOptions``.
        spatial_dims: the dims it can be built for; one name serves 2D and 3D where both exist.
        pretrained_dims: the dims for which ImageNet weights exist.
        task: ``"classification"`` (a ``Classifier``: image -> logits), ``"segmentation"``
            (a ``Segmenter``: image -> per-voxel logits of the same spatial size),
            ``"registration"`` (a moving + fixed pair -> a flow field in voxels) or
            ``"detection"`` (a ``Detector``, built by ``create_detector``: images -> boxes).
        takes_channels: accepts ``BuildOptions.channels``.
        min_channel_levels: the fewest entries ``BuildOptions.channels`` may have.
        takes_deep_supervision: accepts ``BuildOptions.deep_supervision``.
        takes_stem_stride: accepts ``BuildOptions.stem_stride`` other than 1.
        channels_last: the ``(spatial_dims, use)`` pairs in which the network runs in the
            channels-last layout on the CPU; a use is ``"train"`` (training runs) or
            ``"inference"`` (``load_run``). Set where ``benchmarks/memory_format.py``
            measured it at least 5% faster than the default layout
            (``medlens.models.memory_format``).
    """

    name: str
    builder: Builder
    spatial_dims: tuple[int, ...]
    pretrained_dims: tuple[int, ...] = ()
    task: str = "classification"
    takes_channels: bool = False
    takes_deep_supervision: bool = False
    min_channel_levels: int = 3
    channels_last: frozenset[tuple[int, str]] = frozenset()
    takes_stem_stride: bool = False


MODELS: Registry[ModelEntry] = Registry("model")


TASKS = ("classification", "detection", "registration", "segmentation")

#: The uses ``ModelEntry.channels_last`` may name: training runs, and ``load_run``.
LayoutUse = Literal["train", "inference"]
LAYOUT_USES: tuple[str, ...] = get_args(LayoutUse)


def register_model(
    name: str,
    spatial_dims: tuple[int, ...] = (2,),
    pretrained_dims: tuple[int, ...] = (),
    task: str = "classification",
    takes_channels: bool = False,
    takes_deep_supervision: bool = False,
    min_channel_levels: int = 3,
    channels_last: tuple[tuple[int, str], ...] = (),
    takes_stem_stride: bool = False,
) -> Callable[[Builder], Builder]:
    """Register a builder under ``name`` for ``task`` (one of ``TASKS``).

    Example:
        >>> @register_model("tiny_net", spatial_dims=(2, 3))  # doctest: +SKIP
        ... def tiny_net(opts: BuildOptions) -> Classifier: ...
    """

    if task not in TASKS:
        raise ValueError(f"model {name!r}: task must be one of {TASKS}, got {task!r}")
    for dims, use in channels_last:
        if dims not in spatial_dims or use not in LAYOUT_USES:
            raise ValueError(
                f"model {name!r}: channels_last pairs are (one of its spatial_dims "
                f"{spatial_dims}, one of {LAYOUT_USES}), got {(dims, use)!r}"
            )

    def decorator(builder: Builder) -> Builder:
        MODELS.register(name)(
            ModelEntry(
                name,
                builder,
                tuple(spatial_dims),
                tuple(pretrained_dims),
                task,
                takes_channels,
                takes_deep_supervision,
                min_channel_levels,
                frozenset(channels_last),
                takes_stem_stride,
            )
        )
        return builder

    return decorator


def model_names(task: str) -> list[str]:
    """The registered names for ``task``, sorted."""
    return [name for name in MODELS.names() if MODELS.get(name).task == task]


_ARCHITECTURES = (
    "small_cnn",
    "lenet",
    "resnet",
    "densenet",
    "vgg",
    "inception",
    "efficientnet",
    "alexnet",
    "googlenet",
    "segmenters",
    "voxelmorph",
    "mobilenet",
    "detection.builders",
)


def _populate() -> None:
    # Importing the architecture modules registers their builders.
    for module in _ARCHITECTURES:
        importlib.import_module(f"medlens.models.{module}")


_populate()
