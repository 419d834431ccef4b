"""FeatureSet: lossless .npz round trip, atomic writes, clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlens.errors import InputError
from medlens.features import FeatureSet


def _feature_set(rng: np.random.Generator) -> FeatureSet:
    return FeatureSet(
        features=rng.normal(size=(5, 3)),
        case_ids=["test/000001", "a/ü.png", "c", "d", "e"],
        labels=[0, 1, -1, 1, 0],
        splits=["train", "val", "test", "", "train"],
        feature_names=["firstorder_mean", "glcm_contrast", "deep_0000"],
        class_names=["normal", "pneumonia"],
        meta={"extractor": "deep", "skipped_files": [{"file": "x.dcm", "reason": "bad"}]},
    )


def test_save_load_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    fs = _feature_set(rng)
    path = fs.save(tmp_path / "sub" / "features.npz")
    back = FeatureSet.load(path)
    assert back.features.dtype == np.float32
    np.testing.assert_array_equal(back.features, fs.features)
    np.testing.assert_array_equal(back.labels, fs.labels)
    assert back.case_ids == fs.case_ids
    assert back.splits == fs.splits
    assert back.feature_names == fs.feature_names
    assert back.class_names == fs.class_names
    assert back.meta == fs.meta
    assert [p.name for p in path.parent.iterdir()] == ["features.npz"]  # no temp file left


def test_subset_by_split(rng: np.random.Generator) -> None:
    fs = _feature_set(rng)
    train = fs.subset(fs.split_mask("train"))
    assert train.case_ids == ["test/000001", "e"]
    np.testing.assert_array_equal(train.features, fs.features[[0, 4]])


def test_inconsistent_lengths_are_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="labels has 2 entries for 3"):
        FeatureSet(rng.normal(size=(3, 2)), ["a", "b", "c"], [0, 1], ["", "", ""], ["x", "y"])


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"not a zip", "cannot be read"), (None, "not found")],
)
def test_unreadable_files_are_input_errors(tmp_path: Path, content, reason: str) -> None:
    path = tmp_path / "features.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=reason):
        FeatureSet.load(path)


def test_an_other_npz_is_not_a_feature_file(tmp_path: Path) -> None:
    path = tmp_path / "images.npz"
    np.savez(path, train_images=np.zeros((2, 4, 4)))
    with pytest.raises(InputError, match="not a medlens feature file"):
        FeatureSet.load(path)
