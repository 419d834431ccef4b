"""``mobilenetv3_large_100``: timm's MobileNetV3-Large: a light 2D backbone, the
feature extractor of ``faster_rcnn_mobilenet_v3``.

Small-input stem (``cifar_stem``, automatic under 64 px): the stem convolution keeps its 3x3
kernels with stride 1 instead of 2, as for EfficientNet.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medlens.models.classifier import Classifier, stage
from medlens.models.registry import BuildOptions, register_model
from medlens.models.timm_backbone import TimmClassifier, create_timm_net


class TimmMobileNetV3(TimmClassifier):
    """A timm MobileNetV3; stages: the stem and the seven inverted-residual stages (its 1x1
    head convolution sits after the pooling, in the head)."""

    def stages(self) -> list[nn.Module]:
        n = self.net
        return [stage(n.conv_stem, n.bn1), *n.blocks]

    @property
    def target_layer(self) -> nn.Module:
        return self.net.blocks[-1]


@register_model(
    "mobilenetv3_large_100",
    spatial_dims=(2,),
    pretrained_dims=(2,),
    channels_last=((2, "train"), (2, "inference")),
)
def mobilenetv3_large_100(opts: BuildOptions) -> Classifier:
    net: Any = create_timm_net("mobilenetv3_large_100", opts)
    if opts.small_input_stem:
        net.conv_stem.stride = (1, 1)
    return TimmMobileNetV3(net)
