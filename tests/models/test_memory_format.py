"""3D models train channels-last on the CPU; the layout changes speed, not the numbers."""

from __future__ import annotations

import io

import pytest
import torch

from medlens.models import create_model
from medlens.models.memory_format import preferred_memory_format, to_preferred_memory_format

CHANNELS_LAST_3D = torch.channels_last_3d


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 5]


def test_only_3d_work_on_the_cpu_is_moved_to_channels_last() -> None:
    assert preferred_memory_format(3, torch.device("cpu")) is CHANNELS_LAST_3D
    assert preferred_memory_format(2, torch.device("cpu")) is torch.contiguous_format
    # cuDNN picks its own layouts: a GPU run is left as it was
    assert preferred_memory_format(3, torch.device("cuda")) is torch.contiguous_format

    flat = create_model("small_cnn", spatial_dims=2, num_classes=2)
    before = [p.stride() for p in flat.parameters()]
    assert to_preferred_memory_format(flat, 2, torch.device("cpu")) is flat
    assert [p.stride() for p in flat.parameters()] == before


def test_a_3d_network_in_channels_last_computes_the_same_logits_and_gradients() -> None:
    torch.manual_seed(0)
    default = create_model("small_cnn", spatial_dims=3, channels=[8, 16, 32], num_classes=2)
    fast = create_model("small_cnn", spatial_dims=3, channels=[8, 16, 32], num_classes=2)
    fast.load_state_dict(default.state_dict())
    to_preferred_memory_format(fast, 3, torch.device("cpu"))
    weights = _conv_weights(fast)
    assert weights and all(w.is_contiguous(memory_format=CHANNELS_LAST_3D) for w in weights)
    assert not all(w.is_contiguous() for w in weights)

    x = torch.rand(3, 1, 16, 16, 16)
    y = torch.tensor([0, 1, 1])
    grads = []
    for model in (default, fast):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert torch.allclose(default(x), fast(x), atol=1e-5)
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-5, rtol=1e-4), name


def test_a_channels_last_checkpoint_loads_into_a_default_model() -> None:
    torch.manual_seed(1)
    trained = create_model("small_cnn", spatial_dims=3, num_classes=2)
    to_preferred_memory_format(trained, 3, torch.device("cpu"))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh = create_model("small_cnn", spatial_dims=3, num_classes=2)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    trained.eval()
    fresh.eval()
    x = torch.rand(2, 1, 8, 8, 8)
    assert all(w.is_contiguous() for w in _conv_weights(fresh))
    assert torch.allclose(trained(x), fresh(x), atol=1e-6)


@pytest.mark.parametrize("name", ["unet", "vnet"])
def test_3d_segmenters_take_the_layout_and_keep_their_output(name: str) -> None:
    torch.manual_seed(2)
    default = create_model(name, spatial_dims=3, num_classes=2)
    fast = create_model(name, spatial_dims=3, num_classes=2)
    fast.load_state_dict(default.state_dict())
    to_preferred_memory_format(fast, 3, torch.device("cpu"))
    default.eval()
    fast.eval()
    x = torch.rand(1, 1, 32, 32, 32)
    assert torch.allclose(default(x), fast(x), atol=1e-4)
