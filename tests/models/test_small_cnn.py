"""small_cnn's blocks: the default two, and as many as ``model.channels`` names."""

from __future__ import annotations

import pytest
import torch

from medlens.config import parse_config
from medlens.errors import ConfigError, InputError
from medlens.models import create_model, model_from_config


def test_the_default_keeps_the_two_block_layout_its_checkpoints_were_saved_with() -> None:
    model = create_model("small_cnn", num_classes=2, spatial_dims=2)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["block1.0.weight"] == (32, 1, 3, 3)
    assert shapes["block2.0.weight"] == (64, 32, 3, 3)
    assert shapes["fc.weight"] == (2, 64)
    assert not any(key.startswith("block3") for key in shapes)
    # conv 1->32, BN 32, max pool, conv 32->64, BN 64, linear 64->2
    assert sum(p.numel() for p in model.parameters()) == 288 + 64 + 18432 + 128 + 130
    assert model.num_features == 64 and model.target_layer is model.block2


def test_channels_set_the_number_and_width_of_3d_blocks_and_survive_a_rebuild() -> None:
    model = create_model("small_cnn", spatial_dims=3, channels=[16, 32, 48], num_classes=2)
    assert [stage[0].out_channels for stage in model.stages()] == [16, 32, 48]
    assert model.target_layer is model.block3 and model.num_features == 48
    x = torch.zeros(2, 1, 28, 28, 28)
    model.eval()
    assert model.forward_features(x).shape == (2, 48, 7, 7, 7)  # two 2x pools
    assert model(x).shape == (2, 2)
    rebuilt = model_from_config(model.config)
    assert [stage[0].out_channels for stage in rebuilt.stages()] == [16, 32, 48]
    rebuilt.load_state_dict(model.state_dict())  # the same keys and shapes


def test_one_block_has_no_pool() -> None:
    model = create_model("small_cnn", spatial_dims=2, channels=[8])
    assert model.forward_features(torch.zeros(1, 1, 28, 28)).shape == (1, 8, 28, 28)


def test_a_unet_still_needs_three_levels_and_zero_or_no_widths_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"model.channels.*at least 3 levels"):
        create_model("unet", spatial_dims=2, channels=[8, 16])
    for name in ("small_cnn", "unet"):  # a zero width once built a unet that learnt nothing
        with pytest.raises(ConfigError, match="model.channels.*positive integer, got 0"):
            create_model(name, spatial_dims=2, channels=[8, 0, 16])
    with pytest.raises(ConfigError, match="model.channels"):
        parse_config(
            {
                "name": "x",
                "data": {"format": "medmnist", "path": "x.npz"},
                "model": {"name": "small_cnn", "channels": []},
            }
        )


def test_an_image_too_small_for_the_blocks_gets_one_clear_error() -> None:
    model = create_model("small_cnn", spatial_dims=2, channels=[8, 8, 8, 8]).eval()
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 2)  # 8 -> 4 -> 2 -> 1
    with pytest.raises(InputError, match=r"at least 8 px.*\(7, 9\)"):
        model(torch.zeros(1, 1, 7, 9))


def test_a_strided_stem_keeps_each_blocks_resolution_and_weights_at_an_eighth_of_the_work() -> None:
    pooled = create_model("small_cnn", spatial_dims=3, channels=[4, 8, 16])
    strided = create_model("small_cnn", spatial_dims=3, channels=[4, 8, 16], stem_stride=2)
    assert strided.config["stem_stride"] == 2 and pooled.config["stem_stride"] == 1
    # the same parameters: a checkpoint of one has the other's keys and shapes
    strided.load_state_dict(pooled.state_dict())
    assert not any(isinstance(layer, torch.nn.MaxPool3d) for layer in strided.block1)
    assert strided.block1[0].stride == (2, 2, 2)
    x = torch.rand(2, 1, 32, 32, 32)
    outputs = {}
    for name, model in (("pooled", pooled.eval()), ("strided", strided.eval())):
        features = x
        for stage in model.stages():
            features = stage(features)
            outputs.setdefault(name, []).append(tuple(features.shape[2:]))
    assert outputs["strided"] == outputs["pooled"] == [(16,) * 3, (8,) * 3, (8,) * 3]
    # the first convolution samples every second voxel: its output at (i, j, k) is the
    # pooled network's convolution output at (2i, 2j, 2k), before normalisation
    conv_full = pooled.block1[0](x)
    assert torch.allclose(strided.block1[0](x), conv_full[:, :, ::2, ::2, ::2], atol=1e-6)
    rebuilt = model_from_config(strided.config)
    assert rebuilt.block1[0].stride == (2, 2, 2)


def test_a_checkpoint_config_without_a_stem_stride_rebuilds_the_pooled_network() -> None:
    config = dict(create_model("small_cnn", spatial_dims=2).config)
    del config["stem_stride"]  # written before the option existed
    assert model_from_config(config).block1[0].stride == (1, 1)


def test_a_stem_stride_is_refused_where_it_cannot_be_honoured() -> None:
    with pytest.raises(
        ConfigError, match=r"model.stem_stride.*resnet18 has no stem stride.*small_cnn"
    ):
        create_model("resnet18", stem_stride=2)
    with pytest.raises(ConfigError, match=r"model.stem_stride.*one block"):
        create_model("small_cnn", channels=[8], stem_stride=2)
    with pytest.raises(ConfigError, match=r"model.stem_stride.*1 or 2, got 3"):
        create_model("small_cnn", stem_stride=3)
    with pytest.raises(ConfigError, match="model.stem_stride"):
        parse_config(
            {
                "name": "x",
                "data": {"format": "medmnist", "path": "x.npz"},
                "model": {"name": "small_cnn", "stem_stride": 4},
            }
        )
