"""``explain``: every method gives one [0, 1] map per image on the input grid, 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlens.errors import ConfigError, UnknownNameError
from medlens.explain import EXPLAINERS, explain
from medlens.models import create_model

METHODS = ["gradcam", "gradcam++", "saliency", "smoothgrad", "integrated-gradients", "occlusion"]


def test_the_registry_holds_the_six_methods() -> None:
    assert EXPLAINERS.names() == sorted(METHODS)


@pytest.mark.parametrize("dims,side", [(2, 28), (3, 16)])
@pytest.mark.parametrize("method", METHODS)
def test_heatmaps_are_one_unit_range_map_per_image(method: str, dims: int, side: int) -> None:
    torch.manual_seed(0)
    model = create_model("small_cnn", spatial_dims=dims, input_size=side).eval()
    x = torch.rand((2, 1) + (side,) * dims, generator=torch.Generator().manual_seed(1))
    maps = explain(model, x, target=None, method=method)
    assert maps.shape == (2,) + (side,) * dims and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    # min-max scaling: every map that is not constant spans exactly [0, 1]
    for m in maps:
        assert m.max() == pytest.approx(1.0) and m.min() == pytest.approx(0.0)


def test_no_target_means_each_images_highest_class_and_the_model_is_left_as_it_was() -> None:
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, input_size=28).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        argmax = model.eval()(x).argmax(dim=1).tolist()
    model.train()
    by_default = explain(model, x, None, "gradcam")
    np.testing.assert_array_equal(by_default, explain(model, x, argmax, "gradcam"))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():  # BN running stats untouched too
        assert torch.equal(value, before[key]), key


def test_explaining_another_class_changes_the_map() -> None:
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=2, input_size=28)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    assert not np.allclose(explain(model, x, 0, "saliency"), explain(model, x, 1, "saliency"))


def test_smoothgrad_is_reproducible_from_its_seed_and_leaves_the_global_generator() -> None:
    torch.manual_seed(0)
    model = create_model("small_cnn", input_size=28)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(123)
    first = explain(model, x, 1, "smoothgrad", seed=5)
    after = torch.rand(1)
    torch.manual_seed(123)
    np.testing.assert_array_equal(first, explain(model, x, 1, "smoothgrad", seed=5))
    assert torch.equal(after, torch.rand(1))
    assert not np.array_equal(first, explain(model, x, 1, "smoothgrad", seed=6))


def test_bad_requests_get_one_clear_error() -> None:
    model = create_model("small_cnn", input_size=28)
    x = torch.rand(1, 1, 28, 28)
    with pytest.raises(UnknownNameError, match="lime"):
        explain(model, x, 1, "lime")
    with pytest.raises(ConfigError, match="explain.window") as info:
        explain(model, x, 1, "gradcam", window=4)
    assert "gradcam takes no parameters" in str(info.value)
    with pytest.raises(ConfigError, match="outside 0..1"):
        explain(model, x, 2, "saliency")
    with pytest.raises(ConfigError, match="explain.baseline"):
        explain(model, x, 1, "occlusion", baseline="noise")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        explain(model, x[0], 1, "saliency")
