"""Detect -> crop -> segment the crop -> features -> classify (the cascade), and a detector
trained inside the pipeline (Mask R-CNN, cross-fitted) feeding a CNN on its crops."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.commands.pipeline import run_child
from medlens.pipeline.config import parse_pipeline
from medlens.pipeline.run import train_pipeline

pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_cascade_segments_crops_and_maps_them_back_onto_each_image(
    cells_dir: Path, cells_data, tiny_runs, tmp_path: Path
) -> None:
    config = parse_pipeline({
        "kind": "pipeline", "name": "cascade", "output_dir": str(tmp_path / "runs"),
        "n_bootstrap": 10, "examples": 2, "data": cells_data(cells_dir),
        "stages": [
            {"name": "detect", "kind": "detect", "source": "ground_truth"},
            {"name": "cell", "kind": "crop", "input": "detect", "margin": 0.2, "size": [32, 32]},
            {"name": "segment", "kind": "segment", "input": "cell", "crossfit_folds": 2,
             "run": tiny_runs["unet"]},
            {"name": "features", "kind": "features", "masks": "segment",
             "regions": {"nucleus": ["nucleus"]},
             "handcrafted": {"families": ["firstorder", "shape"], "channels": [0], "bins": 8}},
            {"name": "classify", "kind": "classify", "input": "features",
             "estimator": {"name": "logistic_regression"}},
        ],
    })  # fmt: skip
    run = train_pipeline(config, run_child, progress=False)
    for case in range(8):
        found = np.asarray(PIL.Image.open(run / "stages" / "segment" / "masks" / f"{case:03d}.png"))
        assert found.shape == (48, 48)  # the image's grid, not the 32 px crop's
        reference = np.asarray(PIL.Image.open(cells_dir / "images" / f"{case:03d}_mask.png")) > 0
        assert not (found > 0)[~_box_of(reference, margin=0.2)].any()  # nothing outside the crop
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["segmentation"]["segment"]) == {"cytoplasm", "nucleus", "cell"}
    assert len(_rows(run / "predictions.csv")) == 4


def _box_of(mask: np.ndarray, margin: float) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    dy, dx = margin * (y1 - y0), margin * (x1 - x0)
    inside = np.zeros(mask.shape, bool)
    inside[
        max(0, int(np.floor(y0 - dy))) : int(np.ceil(y1 + dy)),
        max(0, int(np.floor(x0 - dx))) : int(np.ceil(x1 + dx)),
    ] = True
    return inside


def test_a_detector_trained_in_the_pipeline_feeds_a_cnn_on_its_crops(
    make_cells, cells_data, tiny_runs, tiny_detector: dict, tmp_path: Path
) -> None:
    cells_dir = make_cells(8)  # 8 training images: the CNN needs a few to train and validate
    detector = {
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "mask_rcnn"},
        "detection": tiny_detector,
        "train": {"epochs": 1, "batch_size": 2},
    }
    config = parse_pipeline({
        "kind": "pipeline", "name": "maskrcnn-cnn", "output_dir": str(tmp_path / "runs"),
        "n_bootstrap": 10, "examples": 0, "data": cells_data(cells_dir),
        "stages": [
            {"name": "detect", "kind": "detect", "crossfit_folds": 2, "run": detector},
            {"name": "cell", "kind": "crop", "input": "detect", "size": [32, 32]},
            {"name": "classify", "kind": "classify", "input": "cell", "run": tiny_runs["cnn"]},
        ],
    })  # fmt: skip
    run = train_pipeline(config, run_child, progress=False)
    record = json.loads((run / "stages" / "detect" / "crossfit.json").read_text())
    test_cases = {r["case_id"] for r in _rows(run / "predictions.csv")}
    predicted = [c for n in record["networks"] for c in n["predicted"]]
    assert sorted(predicted) == sorted({f"{k:03d}" for k in range(16)} - test_cases)
    for network in record["networks"]:
        assert not set(network["trained_on"]) & set(network["predicted"])
        assert not set(network["trained_on"]) & test_cases
    # the CNN trained on crops of the training images and was scored on the test crops
    cnn_rows = _rows(run / "stages" / "classify" / "cnn" / "predictions.csv")
    assert {r["split"] for r in cnn_rows} == {"val", "test"}
    assert len(list((run / "stages" / "classify" / "data" / "train").glob("*.png"))) >= 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert "with_reference_masks" in metrics and metrics["classification"]["n"] == 8
