"""Every registered segmenter x every spatial dim it declares: shapes, gradients, seeds, errors."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch

from medlens.errors import ConfigError, InputError
from medlens.models import (
    MODELS,
    Segmenter,
    check_input_size,
    create_model,
    model_from_config,
    model_names,
)
from medlens.models.segmenters import UNetPlusPlus

torch.set_num_threads(1)

NUM_CLASSES = 3
SEG_CASES = [
    (name, dims) for name in model_names("segmentation") for dims in MODELS.get(name).spatial_dims
]


def _side(name: str, dims: int) -> tuple[int, ...]:
    """The smallest input each net trains on: 32 px in 2D, 16 voxels a side in 3D.

    UNet++'s instance norm needs more than one voxel at its 1/16 level, so one side is 32.
    """
    if dims == 2:
        return (32, 32)
    return (16, 16, 32) if name == "unet_plus_plus" else (16, 16, 16)


def _input(name: str, dims: int, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn((batch, 1, *_side(name, dims)), generator=generator)


@functools.cache
def _built(name: str, dims: int) -> Segmenter:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=NUM_CLASSES, spatial_dims=dims)
    assert isinstance(model, Segmenter)
    return model


def test_the_registry_holds_the_segmenters_under_their_task():
    assert set(model_names("segmentation")) == {
        "unet",
        "residual_unet",
        "attention_unet",
        "unet_plus_plus",
        "vnet",
        "fcn",
    }
    assert not set(model_names("segmentation")) & set(model_names("classification"))
    assert MODELS.get("vnet").spatial_dims == (3,)


_NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.instancenorm._InstanceNorm)


def _biases_a_norm_cancels(model: torch.nn.Module, x: torch.Tensor) -> set[str]:
    """Names of convolution biases whose output goes straight into a batch or instance norm.

    The norm subtracts the mean, which removes a per-channel bias, so its exact gradient is 0
    and the float one is rounding noise that may come out exactly 0 (MONAI's attention gate
    has such a conv before a one-channel BatchNorm). They must still be in the graph.
    The pass runs on a copy, so the shared model's running statistics are untouched.
    """
    model = copy.deepcopy(model)
    names = {id(m): n for n, m in model.named_modules()}
    produced: dict[int, str] = {}  # id of a conv's output -> the conv's name
    cancelled: set[str] = set()

    outputs = []  # every output stays alive, so that no id is reused during the pass

    def hook(module, inputs, output):
        outputs.append(output)
        if isinstance(module, torch.nn.modules.conv._ConvNd) and module.bias is not None:
            produced[id(output)] = names[id(module)]
        elif isinstance(module, _NORMS) and id(inputs[0]) in produced:
            cancelled.add(f"{produced[id(inputs[0])]}.bias")

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return cancelled


@pytest.mark.parametrize(("name", "dims"), SEG_CASES, ids=[f"{n}-{d}d" for n, d in SEG_CASES])
def test_logits_keep_the_input_size_and_every_parameter_learns(name, dims):
    model = _built(name, dims)
    model.train()
    model.zero_grad()
    x = _input(name, dims)
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES, *x.shape[2:])
    assert torch.isfinite(logits).all()
    target = torch.randint(
        0, NUM_CLASSES, (2, *x.shape[2:]), generator=torch.Generator().manual_seed(2)
    )
    torch.nn.functional.cross_entropy(logits, target).backward()
    cancelled = _biases_a_norm_cancels(model, x)
    no_grad = [
        k
        for k, p in model.named_parameters()
        if p.grad is None or (k not in cancelled and not p.grad.abs().sum() > 0)
    ]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert model.config["name"] == name and model.config["spatial_dims"] == dims
    assert model.spatial_dims == dims and model.num_classes == NUM_CLASSES


@pytest.mark.parametrize(("name", "dims"), SEG_CASES, ids=[f"{n}-{d}d" for n, d in SEG_CASES])
def test_head_outputs_the_classes_and_target_layer_is_a_feature_map(name, dims):
    model = _built(name, dims).eval()
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.head.register_forward_hook(lambda m, i, o: seen.setdefault("head", o)),
        model.target_layer.register_forward_hook(lambda m, i, o: seen.setdefault("target", o)),
    ]
    try:
        with torch.no_grad():
            model(_input(name, dims, batch=1))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen["head"].shape[1] == NUM_CLASSES
    target = seen["target"]
    assert target.ndim == dims + 2 and target.shape[1] > NUM_CLASSES
    assert id(model.first_conv().weight) in {id(p) for p in model.parameters()}
    assert model.first_conv().weight.shape[1] == 1  # reads the one input channel


@pytest.mark.parametrize(("name", "dims"), SEG_CASES, ids=[f"{n}-{d}d" for n, d in SEG_CASES])
def test_same_seed_gives_the_same_network_and_the_same_logits(name, dims):
    def build(seed: int) -> Segmenter:
        torch.manual_seed(seed)
        return create_model(name, in_channels=1, num_classes=NUM_CLASSES, spatial_dims=dims)

    model, again = build(0), build(0)
    for (key, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    x = _input(name, dims, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), again.eval()(x), rtol=0, atol=0)
    assert not torch.equal(build(1).first_conv().weight, model.first_conv().weight)


@pytest.mark.parametrize(("name", "dims"), SEG_CASES, ids=[f"{n}-{d}d" for n, d in SEG_CASES])
def test_an_input_size_off_the_divisor_gets_one_clear_error(name, dims):
    model = _built(name, dims).eval()
    side = list(_side(name, dims))
    side[-1] += 4 if model.size_divisor > 1 else 3
    x = torch.zeros((1, 1, *side))
    if model.size_divisor == 1:  # fcn reads any size
        with torch.no_grad():
            assert model(x).shape == (1, NUM_CLASSES, *side)
        return
    with pytest.raises(InputError, match=f"multiple of {model.size_divisor} voxels"):
        model(x)


def test_wrong_axes_or_channels_are_input_errors():
    model = _built("unet", 2)
    with pytest.raises(InputError, match="4 axes"):
        model(torch.zeros(1, 1, 32, 32, 32))
    with pytest.raises(InputError, match="reads 1 channel"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(InputError, match="pad \\(or crop\\) to 32x40"):
        check_input_size(model, (1, 1, 30, 33))
    check_input_size(model, (5, 1, 64, 8))  # multiples of 8: no error


def test_vnet_rejects_2d_and_channel_counts_that_do_not_divide_16():
    with pytest.raises(ConfigError, match="3D"):
        create_model("vnet", spatial_dims=2)
    with pytest.raises(ConfigError, match="divisor of 16"):
        create_model("vnet", in_channels=3, spatial_dims=3)
    with pytest.raises(ConfigError, match="ImageNet"):
        create_model("unet", pretrained="imagenet")


def test_unet_plus_plus_deep_supervision_in_training_and_final_output_in_eval():
    torch.manual_seed(0)
    model = UNetPlusPlus(in_channels=1, num_classes=2, spatial_dims=2, deep_supervision=True)
    x = _input("unet_plus_plus", 2)
    outputs = model.train()(x)
    assert isinstance(outputs, list) and len(outputs) == 4
    assert all(o.shape == (2, 2, 32, 32) for o in outputs)
    with torch.no_grad():
        final = model.eval()(x)
    assert isinstance(final, torch.Tensor)
    # the first training output is the final head: same logits as evaluation mode (no BN)
    torch.testing.assert_close(outputs[0].detach(), final)
    assert len(list(model.head.parameters())) == 8  # four 1x1 heads, weight and bias each


def test_unet_plus_plus_explains_why_a_16_voxel_volume_cannot_train():
    model = _built("unet_plus_plus", 3).train()
    with pytest.raises(InputError, match="at least 32"):
        model(torch.zeros(2, 1, 16, 16, 16))


def test_init_from_a_segmenter_checkpoint_keeps_the_backbone_and_renews_the_head(tmp_path):
    source = _built("unet", 2)
    path = tmp_path / "unet.pt"
    torch.save({"model": source.state_dict(), "model_config": source.config}, path)
    model = create_model("unet", num_classes=2, spatial_dims=2, init=path)
    assert model.init_report["skipped_head"], "the 3-class head does not fit 2 classes"
    assert not model.init_report["skipped_shape"]
    torch.testing.assert_close(model.first_conv().weight, source.first_conv().weight)


def test_the_config_is_json_and_rebuilds_the_same_architecture():
    model = _built("residual_unet", 3)
    config = json.loads(json.dumps(model.config))
    rebuilt = model_from_config(config)
    assert isinstance(rebuilt, Segmenter) and rebuilt.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


def test_channels_widen_a_unet_and_survive_a_rebuild() -> None:
    from medlens.errors import ConfigError
    from medlens.models import model_from_config

    narrow = create_model("residual_unet", spatial_dims=2)
    wide = create_model("residual_unet", spatial_dims=2, channels=[32, 64, 128, 256])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) > 3 * count(narrow)
    assert wide(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    rebuilt = model_from_config(wide.config)
    assert count(rebuilt) == count(wide)
    with pytest.raises(ConfigError, match="model.channels"):
        create_model("vnet", spatial_dims=3, channels=[8, 16, 32])


def test_deep_supervision_is_set_through_the_factory_and_kept_in_the_config() -> None:
    model = create_model("unet_plus_plus", spatial_dims=2, deep_supervision=True)
    assert model.config["deep_supervision"] is True
    x = _input("unet_plus_plus", 2)
    assert isinstance(model.train()(x), list)
    rebuilt = model_from_config(model.config)
    assert isinstance(rebuilt.train()(x), list)
    assert create_model("unet_plus_plus", spatial_dims=2).config["deep_supervision"] is False
    with pytest.raises(ConfigError, match="model.deep_supervision.*unet_plus_plus"):
        create_model("unet", spatial_dims=2, deep_supervision=True)
