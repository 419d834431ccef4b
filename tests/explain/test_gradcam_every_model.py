"""Grad-CAM finds its layer for every registered classifier, 2D at 28 px and 3D at 28^3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlens.explain import explain
from medlens.models import MODELS, create_model, model_names

CASES = [
    (name, dims) for name in model_names("classification") for dims in MODELS.get(name).spatial_dims
]


@pytest.mark.parametrize("name,dims", CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def test_gradcam_localises_for_every_classifier(name: str, dims: int) -> None:
    """Also where the model's own target layer is 1 px at 28 px (VGG, AlexNet, 3D ResNets):
    the map must vary over the image, not be the constant a 1x1 layer gives."""
    torch.manual_seed(0)
    kwargs = {"input_size": 28} if dims == 2 else {"input_size": 28, "cifar_stem": False}
    model = create_model(name, spatial_dims=dims, num_classes=2, **kwargs).eval()
    x = torch.rand((1, 1) + (28,) * dims, generator=torch.Generator().manual_seed(1))
    maps = explain(model, x, None, "gradcam")
    assert maps.shape == (1,) + (28,) * dims
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() == pytest.approx(1.0)
    assert maps.std() > 0.01
