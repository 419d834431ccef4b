"""MedMNIST ``.npz`` loading and the MedMNISTSource on the real PneumoniaMNIST / AdrenalMNIST3D."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from medlens.data.case import Case
from medlens.data.medmnist import MedMNISTSource, load_medmnist_npz
from medlens.errors import ConfigError, InputError


def _label_counts(source: MedMNISTSource, split: str) -> tuple[int, int]:
    counts = Counter(c.label for c in source.cases if c.split == split)
    return counts[0], counts[1]


def test_pneumonia_subset_matches_provenance(pneumonia_npz: Path) -> None:
    arrays = load_medmnist_npz(pneumonia_npz)
    assert arrays.layout == "grey" and arrays.flag == "pneumoniamnist"
    assert {s: a.shape for s, a in arrays.images.items()} == {
        "train": (3882, 28, 28), "val": (524, 28, 28), "test": (624, 28, 28)
    }  # fmt: skip
    source = arrays.as_source()
    assert source.class_names == ["normal", "pneumonia"]
    assert _label_counts(source, "train") == (388, 3494)
    assert _label_counts(source, "val") == (135, 389)
    assert _label_counts(source, "test") == (234, 390)


def test_pneumonia_cases_load_unchanged(pneumonia_npz: Path) -> None:
    source = MedMNISTSource(pneumonia_npz)
    case = next(c for c in source.cases if c.case_id == "val/000123")
    assert case.split == "val" and case.source.endswith("#val_images[123]")
    image = source.load(case)
    assert image.array.shape == (1, 28, 28) and image.array.dtype == np.float32
    assert image.spacing == (1.0, 1.0)
    np.testing.assert_array_equal(image.array[0], source.arrays.images["val"][123])
    assert image.array.max() > 1  # 0..255, scaling is preprocessing's job
    assert case.label == int(source.arrays.labels["val"][123])


def test_adrenal_3d_matches_provenance(adrenal_npz: Path) -> None:
    source = MedMNISTSource(adrenal_npz)
    assert source.arrays.layout == "volume"
    assert source.class_names == ["normal", "hyperplasia"]
    sizes = Counter(c.split for c in source.cases)
    assert (sizes["train"], sizes["val"], sizes["test"]) == (1188, 98, 298)
    assert _label_counts(source, "train") == (929, 259)
    assert _label_counts(source, "val") == (76, 22)
    assert _label_counts(source, "test") == (229, 69)
    image = source.load(source.cases[-1])
    assert source.cases[-1].case_id == "test/000297"
    assert image.array.shape == (1, 28, 28, 28) and image.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(image.array[0], source.arrays.images["test"][297])


def _write_npz(path: Path, **overrides: np.ndarray | None) -> Path:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray | None] = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 7, (n, 1), dtype=np.uint8)
    arrays.update(overrides)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_rgb_images_become_channel_first(tmp_path: Path) -> None:
    source = MedMNISTSource(_write_npz(tmp_path / "dermamnist.npz"))
    assert source.arrays.layout == "rgb"
    assert len(source.class_names) == 7 and source.class_names[4] == "melanoma"  # from the catalog
    image = source.load(source.cases[0])
    assert image.array.shape == (3, 28, 28)
    np.testing.assert_array_equal(np.moveaxis(image.array, 0, -1), source.arrays.images["train"][0])


def test_unknown_file_name_gets_numbered_classes(tmp_path: Path) -> None:
    labels = np.array([[0], [3], [1], [0], [2], [1]], dtype=np.uint8)
    zeros = {"val_labels": np.zeros((2, 1), np.uint8), "test_labels": np.zeros((3, 1), np.uint8)}
    source = MedMNISTSource(_write_npz(tmp_path / "my_set.npz", train_labels=labels, **zeros))
    assert source.class_names == ["0", "1", "2", "3"]
    assert [c.label for c in source.cases[:6]] == [0, 3, 1, 0, 2, 1]


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "broken.npz", val_labels=None)
    with pytest.raises(InputError, match="broken.npz: is missing the array 'val_labels'"):
        load_medmnist_npz(path)


def test_label_count_mismatch(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "short.npz", test_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(InputError, match="test_labels holds 2 labels for 3 images"):
        load_medmnist_npz(path)


def test_multi_label_is_refused(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "chest.npz", train_labels=np.zeros((6, 14), np.uint8))
    with pytest.raises(InputError, match="multi-label"):
        load_medmnist_npz(path)


def test_split_shapes_must_agree(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "mixed.npz", val_images=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="val_images"):
        load_medmnist_npz(path)


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "fake.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="fake.npz"):
        load_medmnist_npz(tmp_path / "fake.npz")


def test_too_few_class_names(pneumonia_npz: Path) -> None:
    with pytest.raises(ConfigError, match="class_names"):
        MedMNISTSource(pneumonia_npz, class_names=["only one"])


def test_case_not_in_the_file_is_refused(pneumonia_npz: Path) -> None:
    with pytest.raises(InputError, match="not in pneumoniamnist.npz"):
        MedMNISTSource(pneumonia_npz).load(Case(case_id="test/999999", label=0))
