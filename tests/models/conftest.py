"""Every registered model x every spatial dim it declares, so a new model is tested unasked."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from medlens.models import MODELS, Classifier, create_model, model_names

torch.set_num_threads(1)

LARGE_PARAMETERS = (
    15_000_000  # above this the 64 px test runs forward only (the 28 px test runs backward for all)
)
NUM_CLASSES = 3


@dataclass(frozen=True)
class ModelCase:
    """One (registry name, spatial dims) pair and how the tests build and feed it."""

    name: str
    dims: int
    num_classes: int = NUM_CLASSES

    @property
    def id(self) -> str:
        return f"{self.name}-{self.dims}d"

    @property
    def large(self) -> bool:
        return parameter_count(self.name, self.dims) > LARGE_PARAMETERS

    def small_input_kwargs(self) -> dict[str, Any]:
        """28 px (voxels): automatic small stem in 2D; the cheap standard stem for 3D backbones."""
        if self.dims == 3 and self.name != "small_cnn":
            return {"input_size": 28, "cifar_stem": False}
        return {"input_size": 28}

    def small_input(self, channels: int = 1, batch: int = 2) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)
        return torch.randn((batch, channels) + (28,) * self.dims, generator=generator)

    def build(self, **overrides: Any) -> Classifier:
        kwargs = {"in_channels": 1, "num_classes": self.num_classes, "spatial_dims": self.dims}
        kwargs.update(self.small_input_kwargs())
        kwargs.update(overrides)
        torch.manual_seed(0)
        return create_model(self.name, **kwargs)


@functools.cache
def parameter_count(name: str, dims: int) -> int:
    with torch.device("meta"):
        model = create_model(name, spatial_dims=dims, input_size=28)
    return sum(p.numel() for p in model.parameters())


ALL_CASES = [
    ModelCase(name, dims)
    for name in model_names("classification")
    for dims in MODELS.get(name).spatial_dims
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        # module scope groups a file's tests by model, so each model is built once per file
        metafunc.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES], scope="module")
    if "case_2d" in metafunc.fixturenames:
        cases = [c for c in ALL_CASES if c.dims == 2]
        metafunc.parametrize("case_2d", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="module")
def built(case: ModelCase) -> Classifier:
    """The case's model for 1-channel 28 px inputs, built once per file; do not mutate it."""
    return case.build()


@pytest.fixture
def fresh(case: ModelCase, built: Classifier) -> Classifier:
    """A private copy of ``built`` that a test may change."""
    return copy.deepcopy(built)
