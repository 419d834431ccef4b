"""Fine-tuning strategies: what trains, at which learning rate, and frozen BatchNorms stay put."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medlens.errors import ConfigError
from medlens.models import configure_finetuning, create_model, set_frozen_bn_eval


@pytest.fixture(params=[("resnet18", 2), ("small_cnn", 3)], ids=["resnet18-2d", "small_cnn-3d"])
def model(request):
    torch.manual_seed(0)
    name, dims = request.param
    return create_model(name, spatial_dims=dims, input_size=28)


def _x(model) -> torch.Tensor:
    return torch.randn(
        (4, 1) + (16,) * model.spatial_dims, generator=torch.Generator().manual_seed(5)
    )


def _ids(params) -> set[int]:
    return {id(p) for p in params}


def _batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_full_trains_everything_at_lr(model):
    groups = configure_finetuning(model, "full", lr=0.01)
    assert len(groups) == 1 and groups[0]["lr"] == 0.01
    assert _ids(groups[0]["params"]) == _ids(model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_linear_probe_trains_the_head_only_and_freezes_batchnorm_statistics(model):
    groups = configure_finetuning(model, "linear_probe", lr=0.1)
    assert [g["name"] for g in groups] == ["head"]
    assert _ids(groups[0]["params"]) == _ids(model.head.parameters())
    backbone_before = {k: v.clone() for k, v in model.state_dict().items() if "fc" not in k}
    optimizer = torch.optim.SGD(groups)
    model.train()
    set_frozen_bn_eval(model)
    assert _batch_norms(model) and not any(bn.training for bn in _batch_norms(model))
    head_before = model.head.weight.detach().clone()
    model(_x(model)).logsumexp(dim=1).mean().backward()
    optimizer.step()
    after = model.state_dict()
    for key, value in backbone_before.items():  # weights and running statistics alike
        assert torch.equal(after[key], value), key
    assert not torch.equal(model.head.weight.detach(), head_before)


def test_freeze_stops_the_first_stages_and_their_batchnorms_only(model):
    stages = model.stages()
    groups = configure_finetuning(model, "freeze", freeze_stages=1, lr=0.01)
    frozen = _ids(stages[0].parameters())
    assert _ids(groups[0]["params"]) == _ids(model.parameters()) - frozen
    model.train()
    set_frozen_bn_eval(model)
    assert not any(bn.training for bn in _batch_norms(stages[0]))
    assert all(bn.training for stage in stages[1:] for bn in _batch_norms(stage))


def test_discriminative_gives_the_backbone_a_scaled_lr(model):
    groups = configure_finetuning(model, "discriminative", lr=0.01, backbone_lr_scale=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == pytest.approx(0.001) and by_name["head"]["lr"] == 0.01
    assert _ids(by_name["head"]["params"]) == _ids(model.head.parameters())
    assert _ids(by_name["backbone"]["params"]) | _ids(by_name["head"]["params"]) == _ids(
        model.parameters()
    )
    assert torch.optim.AdamW(groups).param_groups[0]["lr"] == pytest.approx(0.001)

    groups = configure_finetuning(model, "discriminative", freeze_stages=1, lr=0.01)
    trainable = set().union(*(_ids(g["params"]) for g in groups))
    assert trainable.isdisjoint(_ids(model.stages()[0].parameters()))


def test_a_new_strategy_undoes_the_previous_freezing(model):
    configure_finetuning(model, "linear_probe")
    configure_finetuning(model, "full")
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("strategy", "freeze_stages", "match"),
    [
        ("partial", 0, "unknown strategy 'partial'"),
        ("freeze", 0, "between 1 and"),
        ("freeze", 99, "between 1 and"),
        ("full", 2, "not used by strategy 'full'"),
        ("linear_probe", 1, "not used by strategy 'linear_probe'"),
    ],
)
def test_inconsistent_settings_are_config_errors(model, strategy, freeze_stages, match):
    with pytest.raises(ConfigError, match=match):
        configure_finetuning(model, strategy, freeze_stages=freeze_stages)
