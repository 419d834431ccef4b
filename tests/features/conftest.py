"""A balanced 300-image sample of the real PneumoniaMNIST file and its features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from medlens.data.image import Image
from medlens.features import extract_deep_features, handcrafted_feature_matrix
from medlens.models import create_model

PER_CLASS = 150


@dataclass
class Sample:
    """``images`` uint8 (N, 28, 28); ``labels`` 0 normal / 1 pneumonia; a stratified
    200/100 train/held-out split of row indices."""

    images: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray


@pytest.fixture(scope="session")
def pneumonia_sample(pneumonia_npz: Path) -> Sample:
    with np.load(pneumonia_npz) as archive:
        images, labels = archive["train_images"], archive["train_labels"].ravel()
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False) for c in (0, 1)]
    )
    y = labels[rows].astype(np.int64)
    train, test = train_test_split(np.arange(len(rows)), test_size=100, stratify=y, random_state=0)
    return Sample(images[rows], y, train, test)


@pytest.fixture(scope="session")
def deep_matrix(pneumonia_sample: Sample) -> np.ndarray:
    """Pooled features of a seeded, randomly initialised small_cnn (64 per image)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("small_cnn", input_size=28)
    images = [x[None].astype(np.float32) / 255 for x in pneumonia_sample.images]
    return extract_deep_features(model, images, batch_size=64, progress=False)


@pytest.fixture(scope="session")
def handcrafted_matrix(pneumonia_sample: Sample) -> tuple[np.ndarray, list[str]]:
    """First-order and texture features of the whole 28x28 image (shape is constant)."""
    images = [Image(x[None].astype(np.float32), (1.0, 1.0)) for x in pneumonia_sample.images]
    return handcrafted_feature_matrix(
        images, progress=False, families=("firstorder", "glcm", "glrlm", "glszm")
    )
