"""extract_deep_features and features_from_model on real PneumoniaMNIST images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medlens.config import DataConfig
from medlens.data.dataset import CaseDataset
from medlens.data.medmnist import MedMNISTSource
from medlens.errors import ConfigError, InputError
from medlens.features import extract_deep_features, features_from_model
from medlens.models import create_model


@pytest.fixture
def images(pneumonia_sample) -> list[np.ndarray]:
    return [x[None].astype(np.float32) / 255 for x in pneumonia_sample.images[:40]]


def test_features_are_the_pooled_pre_logits(images: list[np.ndarray]) -> None:
    images = images[:6]
    model = create_model("resnet18", input_size=28)
    features = extract_deep_features(model, images, batch_size=4, progress=False)
    model.eval()
    with torch.no_grad():
        batch = torch.from_numpy(np.stack(images))
        expected = model.forward_head(model.forward_features(batch), pre_logits=True)
        logits = model(batch)
    assert features.shape == (6, model.num_features) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)
    # ...and the classifier head on them gives the model's own logits.
    head = model.head(torch.from_numpy(features))
    np.testing.assert_allclose(head.detach().numpy(), logits.numpy(), rtol=1e-4, atol=1e-4)


def test_batching_and_input_kinds_keep_order(images: list[np.ndarray]) -> None:
    model = create_model("small_cnn", input_size=28)
    model.train()
    reference = extract_deep_features(model, images, batch_size=64, progress=False)
    assert model.training  # the caller's mode is restored
    one_by_one = extract_deep_features(model, iter(images), batch_size=1, progress=False)
    tensors = extract_deep_features(model, [torch.from_numpy(x) for x in images], 7, progress=False)
    for other in (one_by_one, tensors):
        np.testing.assert_allclose(other, reference, rtol=1e-5, atol=1e-6)


def test_a_case_dataset_and_a_data_loader_are_read_in_order(small_npz: Path) -> None:
    source = MedMNISTSource(small_npz)
    cases = source.cases[:12]
    dataset = CaseDataset(source, cases, lambda image, rng: image.with_array(image.array / 255))
    model = create_model("small_cnn", input_size=28)
    from_dataset = extract_deep_features(model, dataset, batch_size=5, progress=False)
    loader = DataLoader(dataset, batch_size=4, shuffle=False)
    from_loader = extract_deep_features(model, loader, progress=False)
    direct = [source.load(c).array / 255 for c in cases]
    expected = extract_deep_features(model, direct, progress=False)
    np.testing.assert_allclose(from_dataset, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_loader, expected, rtol=1e-5, atol=1e-6)


def test_volumes_and_empty_input() -> None:
    model = create_model("small_cnn", spatial_dims=3, input_size=8)
    volumes = [np.random.default_rng(i).random((1, 8, 8, 8), dtype=np.float32) for i in range(3)]
    assert extract_deep_features(model, volumes, progress=False).shape == (3, 64)
    assert extract_deep_features(model, [], progress=False).shape == (0, 64)


def test_images_of_different_shapes_are_an_input_error() -> None:
    model = create_model("small_cnn", input_size=28)
    mixed = [np.zeros((1, 28, 28), np.float32), np.zeros((1, 32, 32), np.float32)]
    with pytest.raises(InputError, match="differ in shape"):
        extract_deep_features(model, mixed, progress=False)


def test_features_from_model_reads_a_split_of_the_real_file(pneumonia_npz: Path) -> None:
    data = DataConfig(path=pneumonia_npz)
    fs = features_from_model("small_cnn", data, splits=["test"], seed=5, progress=False)
    with np.load(pneumonia_npz) as archive:
        labels = archive["test_labels"].ravel()
    assert fs.features.shape == (624, 64)
    np.testing.assert_array_equal(fs.labels, labels)
    assert set(fs.splits) == {"test"} and fs.case_ids[3] == "test/000003"
    assert fs.class_names == ["normal", "pneumonia"]
    (scaling,) = fs.meta["preprocess"]  # the trainer's default for 8-bit images
    assert scaling["name"] == "fixed_scale" and scaling["divisor"] == 255
    assert fs.meta["model_config"]["name"] == "small_cnn"
    again = features_from_model("small_cnn", data, splits=["test"], seed=5, progress=False)
    np.testing.assert_array_equal(again.features, fs.features)
    other = features_from_model("small_cnn", data, splits=["test"], seed=6, progress=False)
    assert not np.allclose(other.features, fs.features)


def test_an_empty_split_is_an_input_error(small_npz: Path) -> None:
    with pytest.raises(InputError, match="no cases in split"):
        features_from_model("small_cnn", DataConfig(path=small_npz), splits=["holdout"])


def test_a_model_without_the_feature_contract_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Conv2d has no forward_features"):
        extract_deep_features(torch.nn.Conv2d(1, 4, 3), [np.zeros((1, 8, 8), np.float32)])
