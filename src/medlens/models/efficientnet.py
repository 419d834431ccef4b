"""``efficientnet_b0`` from timm.

timm's EfficientNet pads symmetrically and reads any size, but its stride 32 leaves a 28 px
image a 1 px map. Small-input stem (``cifar_stem``, automatic under 64 px): the stem convolution
keeps its (pretrained) 3x3 kernels with stride 1 instead of 2, so a 28 px image ends at 2 px.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medlens.models.classifier import Classifier, stage
from medlens.models.registry import BuildOptions, register_model
from medlens.models.timm_backbone import TimmClassifier, create_timm_net


class TimmEfficientNet(TimmClassifier):
    """A timm EfficientNet; stages: stem, the seven MBConv stages, the 1x1 head convolution."""

    def stages(self) -> list[nn.Module]:
        n = self.net
        return [stage(n.conv_stem, n.bn1), *n.blocks, stage(n.conv_head, n.bn2)]

    @property
    def target_layer(self) -> nn.Module:
        return self.net.bn2


@register_model(
    "efficientnet_b0",
    spatial_dims=(2,),
    pretrained_dims=(2,),
    channels_last=((2, "train"), (2, "inference")),
)
def efficientnet_b0(opts: BuildOptions) -> Classifier:
    net: Any = create_timm_net("efficientnet_b0", opts)
    if opts.small_input_stem:
        net.conv_stem.stride = (1, 1)
    return TimmEfficientNet(net)
