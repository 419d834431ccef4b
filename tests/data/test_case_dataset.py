"""CaseDataset: tensors, labels, and augmentation reproducible per (seed, epoch, index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medlens.data.dataset import CaseDataset
from medlens.data.image import Image
from medlens.data.medmnist import MedMNISTSource
from medlens.errors import InputError


@pytest.fixture(scope="module")
def source(pneumonia_npz: Path) -> MedMNISTSource:
    return MedMNISTSource(pneumonia_npz)


def noisy(image: Image, rng: np.random.Generator) -> Image:
    """A stand-in augmentation: scale to 0..1 and add Gaussian noise drawn from ``rng``."""
    return image.with_array(
        image.array / 255.0 + rng.normal(0, 0.1, image.array.shape).astype(np.float32)
    )


def test_items_are_tensor_label_index(source: MedMNISTSource) -> None:
    torch.set_num_threads(1)
    cases = [c for c in source.cases if c.split == "test"][:4]
    dataset = CaseDataset(source, cases)
    tensor, label, index = dataset[2]
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (1, 28, 28)
    assert (label, index) == (cases[2].label, 2)
    np.testing.assert_array_equal(tensor.numpy()[0], source.arrays.images["test"][2])
    assert dataset.labels.tolist() == [c.label for c in cases]


def test_augmentation_depends_on_seed_epoch_and_index_only(source: MedMNISTSource) -> None:
    torch.set_num_threads(1)
    cases = source.cases[:6]
    dataset = CaseDataset(source, cases, transform=noisy, seed=7)
    first = dataset[3][0]
    assert torch.equal(first, dataset[3][0])  # same epoch, same draw
    assert torch.equal(first, CaseDataset(source, cases, transform=noisy, seed=7)[3][0])
    assert not torch.equal(first, CaseDataset(source, cases, transform=noisy, seed=8)[3][0])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[3][0])
    dataset.set_epoch(0)
    assert torch.equal(first, dataset[3][0])


def test_same_batches_with_and_without_workers(source: MedMNISTSource) -> None:
    torch.set_num_threads(1)
    dataset = CaseDataset(source, source.cases[:8], transform=noisy, seed=3)
    dataset.set_epoch(2)
    single = torch.cat([b[0] for b in DataLoader(dataset, batch_size=4, num_workers=0)])
    multi = torch.cat([b[0] for b in DataLoader(dataset, batch_size=4, num_workers=2)])
    assert torch.equal(single, multi)


def test_non_finite_after_transform_names_the_case(source: MedMNISTSource) -> None:
    def broken(image: Image, rng: np.random.Generator) -> Image:
        return image.with_array(image.array / 0.0 - image.array / 0.0)  # 0/0 -> NaN

    dataset = CaseDataset(source, source.cases[:1], transform=broken)
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(InputError) as info:
        dataset[0]
    assert info.value.path == source.cases[0].source and "after preprocessing" in info.value.reason
