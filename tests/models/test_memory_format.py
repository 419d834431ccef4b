"""Networks run channels-last on the CPU where the registry says it was measured faster; the
layout changes speed, not the numbers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from medlens.models import create_model
from medlens.models.memory_format import preferred_memory_format, to_preferred_memory_format
from medlens.models.registry import MODELS, register_model

CHANNELS_LAST_3D = torch.channels_last_3d
CPU = torch.device("cpu")
MEASURED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "memory_format.json"


def _conv_weights(model: torch.nn.Module, dims: int = 3) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == dims + 2]


def test_the_layout_is_chosen_per_architecture_dims_and_use() -> None:
    assert preferred_memory_format("small_cnn", 3, CPU, "train") is CHANNELS_LAST_3D
    assert preferred_memory_format("small_cnn", 3, CPU, "inference") is CHANNELS_LAST_3D
    # MONAI's plain U-Net runs slower channels-last, so it keeps the default layout
    assert preferred_memory_format("unet", 3, CPU, "train") is torch.contiguous_format
    # the FCN trains faster channels-last but predicts slower
    assert preferred_memory_format("fcn", 3, CPU, "train") is CHANNELS_LAST_3D
    assert preferred_memory_format("fcn", 3, CPU, "inference") is torch.contiguous_format
    assert preferred_memory_format("small_cnn", 2, CPU, "train") is torch.channels_last
    assert preferred_memory_format("vgg16", 2, CPU, "train") is torch.contiguous_format
    # cuDNN picks its own layouts: a GPU run is left as it was
    assert preferred_memory_format("small_cnn", 3, torch.device("cuda"), "train") is (
        torch.contiguous_format
    )

    for name, dims in (("unet", 2), ("unet", 3)):
        model = create_model(name, spatial_dims=dims, num_classes=2)
        before = [p.stride() for p in model.parameters()]
        assert to_preferred_memory_format(model, CPU, "train") is model
        assert [p.stride() for p in model.parameters()] == before, name


def test_the_registry_takes_channels_last_where_the_benchmark_measured_it_5_percent_faster():
    """``ModelEntry.channels_last`` is what the committed ``benchmarks/memory_format.py``
    figures give: a (dims, use) pair wherever that use's time ratio (channels-last over
    default) was at most 0.95, for every classifier and segmenter in every dims it has."""
    cases = json.loads(MEASURED.read_text())["cases"]
    uses = {"train": "train", "forward": "inference"}
    measured: dict[str, set[tuple[int, str]]] = {}
    for case, row in cases.items():
        dims = row["arguments"]["spatial_dims"]
        if case != f"{row['model']}_{dims}d_{row['mode']}":
            continue  # a recipe's own network and batch, beside the per-architecture rows
        pairs = measured.setdefault(row["model"], set())
        if row["ratio"] <= 0.95:
            pairs.add((dims, uses[row["mode"]]))
    expected = [
        n for n in MODELS.names() if MODELS.get(n).task in ("classification", "segmentation")
    ]
    assert sorted(measured) == sorted(expected)
    for name, pairs in measured.items():
        assert MODELS.get(name).channels_last == pairs, name


def test_a_layout_pair_must_name_the_models_dims_and_a_known_use() -> None:
    with pytest.raises(ValueError, match="channels_last"):
        register_model("flat_only", spatial_dims=(2,), channels_last=((3, "train"),))
    with pytest.raises(ValueError, match="channels_last"):
        register_model("odd_use", spatial_dims=(3,), channels_last=((3, "export"),))
    assert "flat_only" not in MODELS.names() and "odd_use" not in MODELS.names()


@pytest.mark.parametrize("dims", [2, 3])
def test_a_network_in_channels_last_computes_the_same_logits_and_gradients(dims: int) -> None:
    torch.manual_seed(0)
    default = create_model("small_cnn", spatial_dims=dims, channels=[8, 16, 32], num_classes=2)
    fast = create_model("small_cnn", spatial_dims=dims, channels=[8, 16, 32], num_classes=2)
    fast.load_state_dict(default.state_dict())
    to_preferred_memory_format(fast, CPU, "train")
    layout = CHANNELS_LAST_3D if dims == 3 else torch.channels_last
    weights = _conv_weights(fast, dims)
    assert weights and all(w.is_contiguous(memory_format=layout) for w in weights)
    assert not all(w.is_contiguous() for w in weights)

    x = torch.rand(3, 1, *([16] * dims))
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
    to_preferred_memory_format(trained, CPU, "train")
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


@pytest.mark.parametrize("name", ["attention_unet", "vnet"])
def test_3d_segmenters_take_the_layout_and_keep_their_output(name: str) -> None:
    torch.manual_seed(2)
    default = create_model(name, spatial_dims=3, num_classes=2)
    fast = create_model(name, spatial_dims=3, num_classes=2)
    fast.load_state_dict(default.state_dict())
    to_preferred_memory_format(fast, CPU, "train")
    assert any(w.is_contiguous(memory_format=CHANNELS_LAST_3D) for w in _conv_weights(fast))
    assert not all(w.is_contiguous() for w in _conv_weights(fast))
    default.eval()
    fast.eval()
    x = torch.rand(1, 1, 32, 32, 32)
    assert torch.allclose(default(x), fast(x), atol=1e-4)
