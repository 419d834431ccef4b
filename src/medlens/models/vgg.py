"""``vgg16`` / ``vgg19`` from timm.

Five stride-2 max-pools and timm's 7x7 fc6-as-convolution need at least 32 px: smaller inputs
(28 px MedMNIST) are upsampled bilinearly to 32 px. ``num_features`` is the width of fc7 (4096),
what ``pre_logits`` returns; the feature map itself has 512 channels.
"""

from __future__ import annotations

from torch import nn

from medlens.models.classifier import Classifier, stage
from medlens.models.registry import BuildOptions, register_model
from medlens.models.timm_backbone import TimmClassifier, create_timm_net

MIN_INPUT_SIZE = 32


class TimmVGG(TimmClassifier):
    """A timm VGG; its stages are the five convolution blocks, each ending in a max-pool."""

    def stages(self) -> list[nn.Module]:
        blocks: list[nn.Module] = []
        current: list[nn.Module] = []
        for layer in self.net.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(stage(*current))
                current = []
        return blocks

    @property
    def target_layer(self) -> nn.Module:
        return self.net.features[-1]


@register_model("vgg16", spatial_dims=(2,), pretrained_dims=(2,))
def vgg16(opts: BuildOptions) -> Classifier:
    return TimmVGG(create_timm_net("vgg16", opts), MIN_INPUT_SIZE)


@register_model("vgg19", spatial_dims=(2,), pretrained_dims=(2,))
def vgg19(opts: BuildOptions) -> Classifier:
    return TimmVGG(create_timm_net("vgg19", opts), MIN_INPUT_SIZE)
