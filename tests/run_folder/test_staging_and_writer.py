"""The run folder's one home: staging, publishing, writing and reading its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medlens.config import parse_config
from medlens.errors import ConfigError, InputError
from medlens.preprocess.pipeline import FILE_NAME, build_pipeline
from medlens.run_folder import layout
from medlens.run_folder.reader import (
    read_decision_labels,
    read_run_config,
    read_run_task,
    require_files,
)
from medlens.run_folder.staging import check_free, open_stage, publish_run, staging_dir
from medlens.run_folder.writer import RunWriter
from medlens.tasks import CLASSIFICATION, SEGMENTATION


def test_the_layout_names_the_file_preprocess_writes() -> None:
    assert layout.PREPROCESSING == FILE_NAME


def test_a_run_is_built_beside_its_folder_and_replaces_it_only_when_published(
    tmp_path: Path,
) -> None:
    final = tmp_path / "runs" / "demo"
    final.mkdir(parents=True)
    (final / "old.txt").write_text("old run")
    with pytest.raises(ConfigError, match="already exists") as info:
        check_free(final, overwrite=False)
    assert info.value.key == "name"
    check_free(final, overwrite=True)
    stage = open_stage(final)
    assert stage == staging_dir(final) == tmp_path / "runs" / "demo.partial"
    (stage / "new.txt").write_text("new run")
    assert (final / "old.txt").is_file()  # the finished run stays whole until the end
    publish_run(stage, final)
    assert not stage.exists()
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]


def test_a_stale_stage_is_cleared_unless_resumed(tmp_path: Path) -> None:
    final = tmp_path / "demo"
    stage = open_stage(final)
    (stage / "last.pt").write_bytes(b"checkpoint")
    assert (open_stage(final, resume=True) / "last.pt").is_file()
    assert not (open_stage(final) / "last.pt").exists()


def test_the_writer_writes_every_file_a_reader_reads_back(tmp_path: Path) -> None:
    config = parse_config({"name": "r", "data": {"path": str(tmp_path)}})
    writer = RunWriter(tmp_path / "r")
    writer.config(config)
    writer.preprocessing(build_pipeline([{"name": "fixed_scale", "divisor": 255}]))
    writer.labels(["normal", "pneumonia"], 0.4, threshold_method="youden")
    writer.metrics({"task": "classification", "splits": {}})
    writer.table(layout.PREDICTIONS, [{"case_id": "a", "prob_pneumonia": 0.7}])
    writer.estimator({"fitted": np.arange(3)})
    run = tmp_path / "r"
    assert read_run_config(run) == config
    assert read_run_task(run) is CLASSIFICATION
    assert read_decision_labels(run)["threshold"] == 0.4
    assert json.loads((run / layout.METRICS).read_text())["task"] == "classification"
    assert pd.read_csv(run / layout.PREDICTIONS)["case_id"].tolist() == ["a"]
    assert (run / layout.ESTIMATOR).stat().st_size > 0
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temp files


def test_the_task_of_a_run_folder_comes_from_its_config(tmp_path: Path) -> None:
    (tmp_path / layout.CONFIG).write_text(yaml.safe_dump({"task": "segmentation", "kind": "x"}))
    assert read_run_task(tmp_path) is SEGMENTATION
    (tmp_path / layout.CONFIG).write_text(yaml.safe_dump({"task": "morphing"}))
    with pytest.raises(InputError, match="unknown task 'morphing'"):
        read_run_task(tmp_path)


def test_missing_and_broken_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run folder not found"):
        require_files(tmp_path / "absent", (layout.MODEL,))
    with pytest.raises(InputError, match="did training finish") as info:
        require_files(tmp_path, (layout.MODEL,))
    assert info.value.path.endswith(layout.MODEL)
    (tmp_path / layout.LABELS).write_text(json.dumps({"class_names": ["a", "b"]}))
    with pytest.raises(InputError, match="threshold"):
        read_decision_labels(tmp_path)
    (tmp_path / layout.CONFIG).write_text("data: {path: x}\ntrain: {lr: -1}\n")
    with pytest.raises(InputError, match="train.lr"):
        read_run_config(tmp_path)
