"""Reading a detection run folder: each malformed file named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.errors import InputError
from medlens.run_folder.detection import read_detection_run


def test_missing_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="metrics.json not found"):
        read_detection_run(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"task": "segmentation"}))
    with pytest.raises(InputError, match="not 'detection'"):
        read_detection_run(tmp_path)
    metrics = {
        "task": "detection",
        "class_names": ["a"],
        "splits": {"test": {"metrics": {}, "per_class": {}}},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    run = read_detection_run(tmp_path)
    assert run.class_names == ["a"] and run.table("detections.csv") is None
    (tmp_path / "detections.csv").write_text("split,image_id\ntest,x\n")
    with pytest.raises(InputError, match="missing column"):
        run.table("detections.csv")
