"""Forward and backward of every registered model on the shapes the pipeline feeds it."""

from __future__ import annotations

import torch

from medlens.models import create_model


def _run(model, x, backward: bool) -> torch.Tensor:
    if not backward:
        with torch.no_grad():
            return model(x)
    model.zero_grad(set_to_none=True)
    logits = model(x)
    logits.sum().backward()
    return logits


def _assert_gradients_reach_input_and_head(model) -> None:
    first = model.first_conv().weight.grad
    head = model.head.weight.grad
    assert first is not None and head is not None
    assert torch.isfinite(first).all() and first.abs().sum() > 0
    assert torch.isfinite(head).all() and head.abs().sum() > 0


def test_forward_backward_on_28px_grey_input(case, built):
    """(2, 1, 28, 28) or (2, 1, 28, 28, 28): logits (N, classes); every model backpropagates
    to its first convolution and its head."""
    built.train()
    logits = _run(built, case.small_input(), backward=True)
    assert logits.shape == (2, case.num_classes)
    assert torch.isfinite(logits).all()
    _assert_gradients_reach_input_and_head(built)
    built.zero_grad(set_to_none=True)


def test_forward_on_64px_rgb_input(case_2d):
    """(2, 3, 64, 64) with the standard stem; small models backpropagate."""
    torch.manual_seed(0)
    model = create_model(
        case_2d.name, in_channels=3, num_classes=case_2d.num_classes, input_size=64
    )
    assert model.config["cifar_stem"] is False
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    logits = _run(model.train(), x, backward=not case_2d.large)
    assert logits.shape == (2, case_2d.num_classes)
    assert torch.isfinite(logits).all()
    if not case_2d.large:
        _assert_gradients_reach_input_and_head(model)


def test_features_then_head_is_forward_and_target_layer_gives_the_features(case, built):
    built.eval()
    x = case.small_input()
    captured = []
    hook = built.target_layer.register_forward_hook(lambda m, i, out: captured.append(out))
    try:
        with torch.no_grad():
            features = built.forward_features(x)
            logits = built.forward_head(features)
            pooled = built.forward_head(features, pre_logits=True)
            direct = built(x)
    finally:
        hook.remove()
        built.train()
    assert features.dim() == 2 + case.dims and features.shape[0] == 2
    assert all(s >= 1 for s in features.shape[2:])
    assert captured[0] is features  # the CAM layer's output is the feature map itself
    torch.testing.assert_close(logits, direct)
    assert pooled.shape == (2, built.num_features)
    assert built.spatial_dims == case.dims and built.num_classes == case.num_classes
