"""create_model's arguments: validation, the automatic small-input stem, dropout, rebuilding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medlens.errors import ConfigError, UnknownNameError
from medlens.models import MODELS, create_model, model_from_config


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UnknownNameError, match="resnet18") as err:
        create_model("resnet1")
    assert sorted(err.value.available) == MODELS.names()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"name": "lenet5", "spatial_dims": 3}, "model.spatial_dims"),
        ({"name": "densenet201", "spatial_dims": 3}, "model.spatial_dims"),
        ({"name": "small_cnn", "in_channels": 0}, "model.in_channels"),
        ({"name": "small_cnn", "num_classes": 0}, "model.num_classes"),
        ({"name": "small_cnn", "input_size": -28}, "model.input_size"),
        ({"name": "small_cnn", "dropout": 1.0}, "model.dropout"),
        ({"name": "resnet18", "pretrained": "imagenet21k"}, "model.pretrained"),
        ({"name": "resnet18", "pretrained": "imagenet", "init": "run/model.pt"}, "model.init"),
    ],
)
def test_arguments_the_model_cannot_honour_are_config_errors(kwargs, key):
    with pytest.raises(ConfigError) as err:
        create_model(**kwargs)
    assert err.value.key == key


@pytest.mark.parametrize(
    ("input_size", "cifar_stem", "expected"),
    [
        (28, None, True),
        (63, None, True),
        (64, None, False),
        (None, None, False),
        (28, False, False),
        (224, True, True),
    ],
)
def test_small_input_stem_is_automatic_under_64px(input_size, cifar_stem, expected):
    model = create_model("small_cnn", input_size=input_size, cifar_stem=cifar_stem)
    assert model.config["cifar_stem"] is expected


def test_small_input_stems_keep_the_feature_map_of_a_28px_image_useful():
    x = torch.randn(2, 1, 28, 28)
    sizes = {}
    for name in ("resnet18", "densenet121", "efficientnet_b0"):
        for stem in (False, True):
            model = create_model(name, cifar_stem=stem).eval()
            with torch.no_grad():
                sizes[name, stem] = model.forward_features(x).shape[-1]
    assert sizes == {
        ("resnet18", False): 1, ("resnet18", True): 4,
        ("densenet121", False): 1, ("densenet121", True): 3,
        ("efficientnet_b0", False): 1, ("efficientnet_b0", True): 2,
    }  # fmt: skip
    resnet = create_model("resnet18", input_size=28)
    assert resnet.net.conv1.kernel_size == (3, 3) and resnet.net.conv1.stride == (1, 1)
    assert isinstance(resnet.net.maxpool, nn.Identity)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "densenet121"])
def test_3d_small_input_stem_is_a_3x3x3_stride_1_convolution_without_max_pool(name):
    model = create_model(name, spatial_dims=3, input_size=28).eval()
    conv = model.first_conv()
    assert (
        isinstance(conv, nn.Conv3d) and conv.kernel_size == (3, 3, 3) and conv.stride == (1, 1, 1)
    )
    standard = create_model(name, spatial_dims=3, cifar_stem=False).first_conv()
    assert standard.kernel_size == (7, 7, 7) and standard.stride == (2, 2, 2)
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 1, 16, 16, 16))
    assert features.shape[2:] == (2, 2, 2)  # 16 voxels / 8: only the three stage strides remain


@pytest.mark.parametrize(
    ("name", "dims"), [("small_cnn", 2), ("resnet18", 2), ("googlenet", 2), ("resnet18", 3)]
)
def test_dropout_acts_before_the_classifier_in_training_only(name, dims):
    model = create_model(name, spatial_dims=dims, dropout=0.5, cifar_stem=False)
    x = torch.randn((2, 1) + (16 if dims == 3 else 32,) * dims)
    with torch.no_grad():
        # Batch statistics: with fresh running statistics a new net's eval-mode map is ~0.
        features = model.train().forward_features(x)
        assert features.abs().sum() > 0
        model.eval()
        assert torch.equal(model.forward_head(features), model.forward_head(features))
        model.train()
        first = model.forward_head(features)
        second = model.forward_head(features)
    assert not torch.equal(first, second)


def test_model_from_config_drops_weight_sources_and_refuses_unknown_keys(tmp_path):
    config = create_model("small_cnn", num_classes=4, dropout=0.1).config
    config.update(pretrained="imagenet", init=str(tmp_path / "gone.pt"))
    rebuilt = model_from_config(config)
    assert (
        rebuilt.num_classes == 4
        and rebuilt.config["pretrained"] is None
        and rebuilt.init_report is None
    )
    with pytest.raises(ConfigError, match="input_shape"):
        model_from_config({**config, "input_shape": [28, 28]})
