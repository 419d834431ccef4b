"""``medlens train`` with ``task: detection``: real BCCD images end to end (boxes), a
synthetic instance-mask set (Mask R-CNN), and the bad input that must stop a run before it
writes anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medlens.commands.train import train_and_report
from medlens.config import parse_config
from medlens.errors import ConfigError, InputError
from medlens.tasks import check_config

torch.set_num_threads(1)


def _config(data_path: Path, out: Path, detection: dict, **changes) -> dict:
    cfg = {
        "name": "bccd",
        "task": "detection",
        "output_dir": str(out),
        "data": {"format": "boxes", "path": str(data_path)},
        "preprocess": [
            {"name": "fixed_scale", "divisor": 255},
            {"name": "fit_size", "min_size": 60, "max_size": 80},
        ],
        "augment": [{"name": "random_flip", "axes": [0, 1]}, {"name": "random_scale", "p": 0.5}],
        "model": {"name": "faster_rcnn", "backbone": "resnet18"},
        "detection": detection,
        "train": {"epochs": 1, "batch_size": 2, "lr": 0.001, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 5},
    }
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


@pytest.fixture(scope="module")
def bccd_run(bccd_subset, tmp_path_factory, tiny_detector: dict) -> Path:
    data = bccd_subset({"train": 3, "val": 2, "test": 2})
    out = tmp_path_factory.mktemp("runs")
    return train_and_report(
        check_config(parse_config(_config(data, out, tiny_detector))), progress=False
    )


def test_the_run_folder(bccd_run: Path) -> None:
    for name in (
        "config.yaml", "model.pt", "preprocessing.json", "labels.json", "metrics.json",
        "detections.csv", "detections.json", "detection_images.csv", "counts.csv",
        "history.csv", "data_summary.json", "report.html", "model_card.md",
    ):  # fmt: skip
        assert (bccd_run / name).is_file(), name
    metrics = json.loads((bccd_run / "metrics.json").read_text())
    assert metrics["task"] == "detection" and metrics["class_names"] == ["Platelets", "RBC", "WBC"]
    test = metrics["splits"]["test"]
    assert test["n_images"] == 2 and set(test["metrics"]) >= {
        "map",
        "map50",
        "map75",
        "ar100",
        "f1",
    }
    assert set(test["per_class"]["RBC"]) >= {"ap50", "count", "threshold", "froc_mean_sensitivity"}
    labels = json.loads((bccd_run / "labels.json").read_text())
    assert set(labels["thresholds"]) == {"Platelets", "RBC", "WBC"}
    detections = pd.read_csv(bccd_run / "detections.csv")
    assert set(detections["split"]) <= {"val", "test"}
    # boxes are in each image's own pixels (640 x 480), not the network's 80 x 60
    assert detections["x2"].max() > 100 and detections["x2"].max() <= 640
    report = (bccd_run / "report.html").read_text()
    assert "Counting" in report and "FROC" in report and "Best F1" in report


def test_predict_and_evaluate_the_box_file(bccd_run: Path, bccd_subset, tmp_path: Path) -> None:
    from medlens.commands.evaluate import evaluate_command
    from medlens.commands.predict import PredictOptions, predict_command

    data = bccd_subset({"train": 3, "val": 2, "test": 2})
    out = tmp_path / "found"
    message = predict_command(bccd_run, [data / "JPEGImages"], PredictOptions(out=out, quiet=True))
    assert "detections of 7 images" in message
    assert len(list((out / "overlays").glob("*.png"))) == 7
    text = evaluate_command(pred=out / "detections.csv", ref=data, out=tmp_path / "scores")
    assert "7 images scored" in text
    scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert scores["n_images"] == 7 and "map50" in scores["metrics"]
    with pytest.raises(ConfigError, match="metrics.json already scores"):
        evaluate_command(run_dir=bccd_run)


def _masks_set(root: Path, png_bytes) -> Path:
    """Eight 32 x 32 images, each with a bright square 'cell' and a dark 'dot', as COCO RLE."""
    from medlens.data.boxes.rle import encode_mask

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    document = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "dot"}],
    }
    for i in range(8):
        image = np.full((32, 32), 90, np.uint8)
        y, x = rng.integers(2, 14, size=2)
        image[y : y + 12, x : x + 12] = 220
        image[26:30, 4:8] = 10
        (root / "images" / f"{i}.png").write_bytes(png_bytes(image))
        document["images"].append({"id": i, "file_name": f"{i}.png", "height": 32, "width": 32})
        for category, (r0, r1, c0, c1) in ((1, (y, y + 12, x, x + 12)), (2, (26, 30, 4, 8))):
            mask = np.zeros((32, 32), bool)
            mask[r0:r1, c0:c1] = True
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": i,
                    "category_id": category,
                    "bbox": [int(c0), int(r0), int(c1 - c0), int(r1 - r0)],
                    "segmentation": encode_mask(mask),
                }
            )
    path = root / "annotations.json"
    path.write_text(json.dumps(document))
    return path


def test_mask_rcnn_end_to_end(tmp_path: Path, png_bytes, tiny_detector: dict) -> None:
    data = _masks_set(tmp_path / "data", png_bytes)
    cfg = _config(
        data,
        tmp_path / "runs",
        tiny_detector,
        name="masks",
        preprocess=[{"name": "fixed_scale", "divisor": 255}],
        augment=[{"name": "random_rotate90", "p": 0.5}],
        model={"name": "mask_rcnn"},
        data={"folds": 4, "fold": 1, "val_fraction": 0.2},
    )
    run = train_and_report(check_config(parse_config(cfg)), progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["instance_masks"] and "mask_map50" in metrics["splits"]["test"]["metrics"]
    images = json.loads((run / "detections.json").read_text())["images"]
    masks = [d["mask"] for i in images for d in i["detections"]]
    assert all(m["size"] == [32, 32] for m in masks)


def test_bad_input_stops_the_run_before_anything_is_written(
    bccd_subset, tmp_path: Path, png_bytes, tiny_detector: dict
) -> None:
    data = bccd_subset({"train": 2, "val": 1, "test": 1})
    runs = tmp_path / "runs"
    wrong = _config(
        data, runs, tiny_detector, data={"class_names": ["RBC", "WBC", "Platelets", "Lymphocyte"]}
    )
    with pytest.raises(ConfigError, match="Lymphocyte has no object"):
        train_and_report(check_config(parse_config(wrong)), progress=False)
    boxes_only = _config(data, runs, tiny_detector, model={"name": "mask_rcnn"})
    with pytest.raises(ConfigError, match="learns instance masks"):
        train_and_report(check_config(parse_config(boxes_only)), progress=False)
    table = tmp_path / "boxes.csv"
    table.write_text("path,x1,y1,x2,y2,label\nmissing.png,1,1,5,5,cell\n")
    with pytest.raises(InputError, match="missing.png, which does not exist"):
        train_and_report(
            check_config(parse_config(_config(table, runs, tiny_detector))), progress=False
        )
    assert not runs.exists() or not any(runs.iterdir())
