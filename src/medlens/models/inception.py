"""``inception_v3`` from timm.

Its stem of unpadded 3x3 convolutions and stride-2 pools needs at least 75 px: smaller inputs
are upsampled bilinearly to 75 px.
"""

from __future__ import annotations

from torch import nn

from medlens.models.classifier import Classifier, stage
from medlens.models.registry import BuildOptions, register_model
from medlens.models.timm_backbone import TimmClassifier, create_timm_net

MIN_INPUT_SIZE = 75


class TimmInceptionV3(TimmClassifier):
    """timm's Inception-v3; stages: stem, reduction stem, Mixed_5, Mixed_6, Mixed_7."""

    def stages(self) -> list[nn.Module]:
        n = self.net
        return [
            stage(n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3),
            stage(n.Conv2d_3b_1x1, n.Conv2d_4a_3x3),
            stage(n.Mixed_5b, n.Mixed_5c, n.Mixed_5d),
            stage(n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e),
            stage(n.Mixed_7a, n.Mixed_7b, n.Mixed_7c),
        ]

    @property
    def target_layer(self) -> nn.Module:
        return self.net.Mixed_7c


@register_model(
    "inception_v3",
    spatial_dims=(2,),
    pretrained_dims=(2,),
    channels_last=((2, "train"), (2, "inference")),
)
def inception_v3(opts: BuildOptions) -> Classifier:
    return TimmInceptionV3(create_timm_net("inception_v3", opts), MIN_INPUT_SIZE)
