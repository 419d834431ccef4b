"""``medlens evaluate --pred detections.csv --ref ANNOTATIONS``: box files scored, bad ones
named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medlens.cli import app
from medlens.errors import InputError

runner = CliRunner()


def _reference(tmp_path: Path, png_bytes) -> Path:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(png_bytes(np.zeros((20, 30), np.uint8)))
    path = tmp_path / "reference.csv"
    path.write_text(
        "path,x1,y1,x2,y2,label\na.png,1,1,9,9,cell\na.png,12,2,20,10,dot\nb.png,,,,,\n"
    )
    return path


def test_a_perfect_box_file_scores_one(tmp_path: Path, png_bytes) -> None:
    ref = _reference(tmp_path, png_bytes)
    pred = tmp_path / "detections.csv"
    pred.write_text(
        "image_id,path,class,score,x1,y1,x2,y2,finding\n"
        f"a,{tmp_path / 'a.png'},cell,0.9,1,1,9,9,True\n"
        f"a,{tmp_path / 'a.png'},dot,0.8,12,2,20,10,True\n"
    )
    result = runner.invoke(
        app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "2 images scored" in result.output and "map50: 1.0000" in result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["per_class"]["dot"]["f1"]["value"] == 1.0
    assert (tmp_path / "out" / "counts.csv").is_file()


def test_bad_box_files_are_named(tmp_path: Path, png_bytes) -> None:
    from medlens.commands.evaluate_boxes import evaluate_box_files

    ref = _reference(tmp_path, png_bytes)
    pred = tmp_path / "detections.csv"
    pred.write_text("image_id,class,score,x1,y1,x2,y2\nelsewhere.png,cell,0.9,1,1,9,9\n")
    with pytest.raises(InputError, match="detections on image elsewhere.png, which the reference"):
        evaluate_box_files(pred, ref, tmp_path / "out")
    pred.write_text("image_id,class,score,x1,y1,x2,y2\na.png,virus,0.9,1,1,9,9\n")
    with pytest.raises(InputError, match="class\\(es\\) virus"):
        evaluate_box_files(pred, ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    result = runner.invoke(app, ["evaluate", "--pred", str(pred)])
    assert result.exit_code == 2 and "--ref" in result.output
