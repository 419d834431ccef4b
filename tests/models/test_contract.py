"""The rest of the contract for every model: classifier reset, stages, config round trip."""

from __future__ import annotations

import inspect
import json

import torch
from torch import nn

from medlens.models import configure_finetuning, create_model, model_from_config


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_reset_classifier_changes_the_head_only(case, fresh):
    backbone_before = fresh.first_conv().weight.detach().clone()
    fresh.reset_classifier(5)
    assert isinstance(fresh.head, nn.Linear) and fresh.head.out_features == 5
    assert fresh.num_classes == 5 and fresh.config["num_classes"] == 5
    torch.testing.assert_close(fresh.first_conv().weight.detach(), backbone_before)
    with torch.no_grad():
        assert fresh.eval()(case.small_input()).shape == (2, 5)


def test_stages_run_from_the_stem_and_freezing_the_first_stops_their_gradients(case, fresh):
    stages = fresh.stages()
    assert len(stages) >= 2
    stage_params = [list(s.parameters()) for s in stages]
    assert all(stage_params), "every stage holds parameters"
    ids = [{id(p) for p in params} for params in stage_params]
    assert all(a.isdisjoint(b) for i, a in enumerate(ids) for b in ids[i + 1 :])
    assert id(fresh.first_conv().weight) in ids[0], "stage 0 is the stem"
    head_ids = {id(p) for p in fresh.head.parameters()}
    assert all(head_ids.isdisjoint(s) for s in ids)

    configure_finetuning(fresh, "freeze", freeze_stages=1)
    assert not any(p.requires_grad for p in stage_params[0])
    assert all(p.requires_grad for params in stage_params[1:] for p in params)
    assert all(p.requires_grad for p in fresh.head.parameters())
    if not case.large:
        fresh.train()
        fresh(case.small_input()).sum().backward()
        assert all(p.grad is None for p in stage_params[0])
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stage_params[-1])


def test_config_is_json_and_rebuilds_the_same_architecture(case):
    with torch.device("meta"):  # shapes only: no weights are allocated
        model = case.build(in_channels=2, num_classes=4, dropout=0.25)
        config = json.loads(json.dumps(model.config))
        assert config == model.config
        assert set(config) == set(inspect.signature(create_model).parameters) | {"name"}
        rebuilt = create_model(**config)
        from_config = model_from_config({**config, "pretrained": "imagenet", "init": "/nowhere.pt"})
    assert config["name"] == case.name and config["spatial_dims"] == case.dims
    assert _shapes(rebuilt) == _shapes(model)
    assert _shapes(from_config) == _shapes(model)
