"""Models whose evidence is known, and a tiny real run folder, for the explanation tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medlens.data.medmnist import load_medmnist_npz
from medlens.models import Classifier, create_model


class Masking(nn.Module):
    """Multiplies its input by a fixed 0/1 mask: nothing outside the mask reaches the head."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class RegionClassifier(Classifier):
    """logit_1 = w * mean(relu(x) * mask), logit_0 = -logit_1: only the region counts.

    A ``Classifier`` with a CAM layer (``features``) whose map is zero outside the region, so
    every faithful method must put all (CAMs, gradients) or nearly all (occlusion) of its
    mass inside it.
    """

    def __init__(self, region: tuple[slice, ...], shape: tuple[int, ...], w: float) -> None:
        super().__init__(spatial_dims=len(shape), num_classes=2)
        mask = torch.zeros((1, 1) + shape)
        mask[(0, 0) + region] = 1.0
        conv = (nn.Conv2d if len(shape) == 2 else nn.Conv3d)(1, 1, 1, bias=False)
        nn.init.ones_(conv.weight)
        self.features = nn.Sequential(conv, nn.ReLU(), Masking(mask))
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-w], [w]]))
            self.fc.bias.zero_()
        self.num_features = 1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = features.flatten(2).mean(dim=2)
        return pooled if pre_logits else self.fc(pooled)

    def stages(self) -> list[nn.Module]:
        return [self.features]

    @property
    def head(self) -> nn.Module:
        return self.fc

    @property
    def target_layer(self) -> nn.Module:
        return self.features

    def _replace_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(1, num_classes)


@dataclass
class RegionTask:
    """A model that looks only at ``region`` and real images to explain (target class 1)."""

    model: Classifier
    images: torch.Tensor
    region: tuple[slice, ...]

    @property
    def mask(self) -> np.ndarray:
        mask = np.zeros(self.images.shape[2:], dtype=bool)
        mask[self.region] = True
        return mask


@pytest.fixture(scope="session")
def region_task_2d(pneumonia_npz: Path) -> RegionTask:
    """The centre 8x8 px of real 28 px chest radiographs, scaled to [0, 1]."""
    images = load_medmnist_npz(pneumonia_npz).images["test"][:4].astype(np.float32) / 255
    region = (slice(10, 18), slice(10, 18))
    model = RegionClassifier(region, (28, 28), w=25.0).eval()
    return RegionTask(model, torch.from_numpy(images[:, None]), region)


@pytest.fixture(scope="session")
def region_task_3d(adrenal_npz: Path) -> RegionTask:
    """The centre 8^3 voxels of real 28^3 adrenal CT crops, scaled to [0, 1]."""
    images = load_medmnist_npz(adrenal_npz).images["test"][:2].astype(np.float32) / 255
    region = (slice(10, 18),) * 3
    model = RegionClassifier(region, (28, 28, 28), w=25.0).eval()
    return RegionTask(model, torch.from_numpy(images[:, None]), region)


@dataclass
class SquareTask:
    """A small CNN trained to call class 1 when a bright square sits at ``region``.

    ``images`` are real radiographs with the square pasted in (all class 1).
    """

    model: Classifier
    images: torch.Tensor
    region: tuple[slice, ...]
    accuracy: float


@pytest.fixture(scope="session")
def square_task(pneumonia_npz: Path) -> SquareTask:
    """60 Adam steps on 600 real PneumoniaMNIST images, half with a 6x6 px white square."""
    torch.set_num_threads(1)
    images = load_medmnist_npz(pneumonia_npz).images["train"][:600].astype(np.float32) / 255
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, len(images))
    region = (slice(4, 10), slice(16, 22))
    images[(labels == 1, *region)] = 1.0
    x, y = torch.from_numpy(images[:, None]), torch.from_numpy(labels)
    torch.manual_seed(0)
    model = create_model("small_cnn", input_size=28)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        batch = torch.from_numpy(rng.choice(len(x), 32, replace=False))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(dim=1) == y).float().mean())
    return SquareTask(model, x[y == 1][:6], region, accuracy)
