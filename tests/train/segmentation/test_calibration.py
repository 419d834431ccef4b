"""Per-voxel temperature scaling of a segmenter, fitted on validation voxels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from medlens.config import parse_config
from medlens.errors import ConfigError
from medlens.train.segmentation.calibration import (
    VoxelSample,
    check_segmentation_calibration,
    fit_voxel_calibration,
)


def _case(rng: np.random.Generator, shape=(40, 40)):
    logits = rng.normal(size=shape) * 2.0
    reference = (rng.uniform(size=shape) < expit(logits)).astype(int)
    p1 = expit(3.0 * logits)  # three times too sharp
    return np.stack([1 - p1, p1]), reference


def test_the_temperature_comes_from_validation_voxels_only(rng) -> None:
    config = parse_config({"task": "segmentation", "data": {"path": "x", "format": "segmentation"}})
    sample = VoxelSample(seed=0)
    for _ in range(3):
        sample.add("val", *_case(rng), roi=None)
    probs, reference = _case(rng)
    sample.add("test", probs, reference, roi=None)
    calibrator, trust = fit_voxel_calibration(config, sample)
    assert calibrator.temperature == pytest.approx(3.0, rel=0.1)  # type: ignore[attr-defined]
    record = trust["calibration"]
    assert record["unit"] == "voxel" and record["voxels"] == {"val": 4800, "test": 1600}
    assert record["splits"]["test"]["ece_after"] < record["splits"]["test"]["ece_before"]
    flipped = VoxelSample(seed=0)
    for split, (p, r) in (("val", (probs, reference)), ("test", (probs, 1 - reference))):
        flipped.add(split, p, r, roi=None)
    same = VoxelSample(seed=0)
    for split, (p, r) in (("val", (probs, reference)), ("test", (probs, reference))):
        same.add(split, p, r, roi=None)
    assert fit_voxel_calibration(config, flipped)[0] == fit_voxel_calibration(config, same)[0]


def test_only_temperature_or_none(rng) -> None:
    config = parse_config(
        {
            "task": "segmentation",
            "data": {"path": "x", "format": "segmentation"},
            "calibration": {"method": "isotonic"},
        }
    )
    with pytest.raises(ConfigError, match="calibration.method"):
        check_segmentation_calibration(config)


def test_a_segmentation_run_records_its_voxel_calibration(drive_run: Path) -> None:
    calibration = json.loads((drive_run / "calibration.json").read_text())
    assert calibration["method"] == "temperature" and calibration["unit"] == "voxel"
    trust = json.loads((drive_run / "metrics.json").read_text())["trust"]["calibration"]
    assert set(trust["splits"]) == {"val", "test"} and trust["fitted_on"] == "val"
