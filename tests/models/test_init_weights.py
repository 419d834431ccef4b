"""Starting every model from a checkpoint of itself with another number of classes."""

from __future__ import annotations

import torch

from medlens.models import create_model


def _save(model, path):
    torch.save({"model": model.state_dict(), "model_config": model.config}, path)
    return path


def _head_keys(model) -> set[str]:
    head = {id(p) for p in model.head.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in head}


def test_init_with_other_num_classes_loads_backbone_and_keeps_a_fresh_head(case, built, tmp_path):
    path = _save(built, tmp_path / "model.pt")
    torch.manual_seed(123)
    model = create_model(**{**built.config, "num_classes": 2, "init": str(path)})
    source, loaded = built.state_dict(), model.state_dict()
    head = _head_keys(model)
    assert head and head <= set(model.init_report["skipped_head"])
    for key, value in loaded.items():
        if key not in head:
            assert torch.equal(value, source[key]), key
    assert model.head.out_features == 2
    assert model.init_report["source_model"] == case.name
    assert not model.init_report["skipped_shape"] and not model.init_report["missing"]
    assert model.config["init"] == str(path)
