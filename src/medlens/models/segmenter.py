"""The contract every medlens segmenter keeps: image -> per-voxel logits of the same size."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medlens.errors import InputError


class Segmenter(nn.Module, ABC):
    """A 2D or 3D semantic segmentation network.

    ``forward(x)`` takes ``(N, in_channels, *spatial)`` and returns logits
    ``(N, num_classes, *spatial)`` of the same spatial size (apply a softmax over dim 1 for
    probabilities). It first checks the input with :func:`check_input_size`, so a wrong
    shape gets one clear ``InputError`` instead of a tensor-size mismatch deep in the decoder.

    Attributes:
        spatial_dims: 2 for images, 3 for volumes.
        in_channels: image channels the first convolution reads.
        num_classes: logits width, background included (2 for a binary task).
        size_divisor: every spatial side must be a multiple of this many voxels (2 to the
            number of downsamplings; 1 where any size works). Sliding-window patch sizes
            are validated against it.
        config: the ``create_model`` keyword arguments (JSON-serialisable) that rebuild it.
        init_report: what ``load_init_weights`` loaded and skipped, when ``init`` was given.

    Example:
        >>> from medlens.models import create_model
        >>> model = create_model("unet", num_classes=3)
        >>> model(torch.zeros(1, 1, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, num_classes: int, size_divisor: int
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.size_divisor = size_divisor
        self.config: dict[str, Any] = {}
        self.init_report: dict[str, Any] | None = None

    def forward(self, x: torch.Tensor) -> Any:
        # Python shape checks would become guards (or warnings) inside torch.compile / tracing.
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            check_input_size(self, x.shape)
        return self.forward_logits(x)

    @abstractmethod
    def forward_logits(self, x: torch.Tensor) -> Any:
        """Logits ``(N, num_classes, *spatial)`` for an input already checked."""

    @property
    @abstractmethod
    def head(self) -> nn.Module:
        """The layer(s) whose output width is ``num_classes`` (fresh when that changes)."""

    @property
    @abstractmethod
    def target_layer(self) -> nn.Module:
        """The last decoder block before the head: the layer a Seg-Grad-CAM looks at."""

    def first_conv(self) -> nn.Module:
        """The convolution that reads the input image (whose weights follow ``in_channels``)."""
        for module in self.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                return module
        raise TypeError(f"{type(self).__name__} has no convolution")


def check_input_size(model: nn.Module, shape: Sequence[int], source: str = "input") -> None:
    """Check that ``shape`` is ``(N, in_channels, *spatial)`` with sides the model accepts.

    Works for any module: the checks whose attribute (``spatial_dims``, ``in_channels``,
    ``size_divisor``) the module lacks are skipped.

    Args:
        model: a segmenter (or any network).
        shape: the input's shape, batch and channel axes included.
        source: what the input is, named in the error (a file, ``image``, ``input``).

    Raises:
        InputError: wrong number of axes, wrong channel count, or a spatial side (in voxels)
            that is not a positive multiple of ``model.size_divisor``.
    """
    shape = tuple(int(s) for s in shape)
    config = getattr(model, "config", None) or {}
    name = config.get("name") or type(model).__name__
    spatial_dims = getattr(model, "spatial_dims", None)
    if spatial_dims is not None and len(shape) != spatial_dims + 2:
        raise InputError(
            source,
            f"{name} takes (N, C, {', '.join('HWD'[:spatial_dims])}) inputs of "
            f"{spatial_dims + 2} axes, got shape {shape}",
        )
    in_channels = getattr(model, "in_channels", None)
    if in_channels is not None and len(shape) > 1 and shape[1] != in_channels:
        raise InputError(source, f"{name} reads {in_channels} channel(s), the input has {shape[1]}")
    divisor = int(getattr(model, "size_divisor", 1))
    spatial = shape[2:]
    if any(side < 1 or side % divisor for side in spatial):
        padded = tuple(max(divisor, -(-side // divisor) * divisor) for side in spatial)
        raise InputError(
            source,
            f"{name} needs every spatial side to be a positive multiple of {divisor} voxels, "
            f"got {_size(spatial)}: pad (or crop) to {_size(padded)}, or use "
            "sliding-window inference",
        )


def _size(sides: Sequence[int]) -> str:
    return "x".join(str(s) for s in sides)
