"""The contract every medlens classifier keeps (timm's): features, head, stages, CAM layer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from medlens.errors import ConfigError


class Classifier(nn.Module, ABC):
    """An image classifier, 2D or 3D, that answers the questions transfer learning asks.

    ``forward(x)`` is ``forward_head(forward_features(x))``: ``forward_features`` gives the last
    convolutional feature map ``(N, C, *spatial)`` (what a CAM looks at) and ``forward_head``
    pools it and applies the classifier; ``pre_logits=True`` stops before the last linear layer
    and returns ``(N, num_features)``.

    Attributes:
        spatial_dims: 2 for images, 3 for volumes.
        num_classes: width of the logits.
        num_features: width of the pooled pre-logit features.
        config: the ``create_model`` keyword arguments (JSON-serialisable) that rebuild it.
        init_report: what ``load_init_weights`` loaded and skipped, when ``init`` was given.

    Example:
        >>> from medlens.models import create_model
        >>> model = create_model("small_cnn", num_classes=3)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 3])
    """

    num_features: int

    def __init__(self, spatial_dims: int, num_classes: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.num_classes = num_classes
        self.config: dict[str, Any] = {}
        self.init_report: dict[str, Any] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map, ``(N, C, *spatial)``."""

    @abstractmethod
    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits ``(N, num_classes)``, or pooled features ``(N, num_features)``."""

    @abstractmethod
    def stages(self) -> list[nn.Module]:
        """The backbone from the stem to the last stage, in forward order (for freezing)."""

    @property
    @abstractmethod
    def head(self) -> nn.Module:
        """The last linear layer: what a linear probe trains and ``reset_classifier`` replaces."""

    @property
    @abstractmethod
    def target_layer(self) -> nn.Module:
        """The module whose output is the ``forward_features`` map (the Grad-CAM layer)."""

    @abstractmethod
    def _replace_classifier(self, num_classes: int) -> None:
        """Put a freshly initialised last linear layer of ``num_classes`` outputs in place."""

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh one with ``num_classes`` outputs; keep the backbone."""
        if num_classes < 1:
            raise ConfigError("model.num_classes", f"must be at least 1, got {num_classes}")
        self._replace_classifier(num_classes)
        self.num_classes = num_classes
        if self.config:
            self.config["num_classes"] = num_classes

    def first_conv(self) -> nn.Module:
        """The convolution that reads the input image (whose weights follow ``in_channels``)."""
        for module in self.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                return module
        raise TypeError(f"{type(self).__name__} has no convolution")


def stage(*modules: nn.Module) -> nn.Module:
    """Several consecutive modules seen as one stage (a view: nothing is copied or re-parented)."""
    return nn.ModuleList(modules)


def global_average_pool(features: torch.Tensor) -> torch.Tensor:
    """``(N, C, *spatial)`` -> ``(N, C)``, the mean over every spatial axis."""
    return features.flatten(2).mean(dim=2)
