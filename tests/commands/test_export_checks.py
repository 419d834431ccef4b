"""``medlens export`` refuses what it cannot stand behind: a network giving NaN, a malformed
calibrator, an ensemble folder; it finds check images in folders as ``predict`` does; and a
failed export leaves no file behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from typer.testing import CliRunner

import medlens.commands.export as export_command
from medlens.cli import app
from medlens.errors import InputError


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = Path(shutil.copytree(run, tmp_path / "runs" / run.name))
    (copy / "model.onnx").unlink(missing_ok=True)
    return copy


def _export(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_network_giving_nan_fails_naming_model_pt_and_writes_nothing(
    nan_run: Path, tmp_path: Path
) -> None:
    run = nan_run
    before = _files(run)
    out = tmp_path / "out" / "model.onnx"

    result = _export(str(run), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "model.pt" in result.output and "non-finite outputs (NaN/inf)" in result.output
    assert _files(out.parent) == [] and _files(run) == before  # not even a partial file


def test_a_nan_difference_is_a_failure_and_an_earlier_export_stays(
    pneumonia_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")
    monkeypatch.setattr(export_command, "verify_onnx", lambda *args: float("nan"))
    with pytest.raises(InputError, match=r"max \|ONNX - PyTorch\| is nan"):
        export_command.export_run(pneumonia_run, out=out)
    assert out.read_bytes() == b"an earlier export" and _files(tmp_path) == ["model.onnx"]


def test_a_malformed_calibrator_fails_export_instead_of_entering_the_metadata(
    pneumonia_run: Path, tmp_path: Path
) -> None:
    run = _copy(pneumonia_run, tmp_path)
    bad = {"method": "dirichlet", "coef": [[1.0, 2.0, 3.0]], "intercept": [0.0]}
    (run / "calibration.json").write_text(json.dumps(bad))
    out = tmp_path / "out" / "model.onnx"
    result = _export(str(run), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "calibration.json" in result.output and "coef" in result.output
    assert not out.exists()


def test_check_reads_a_folder_of_pngs_as_predict_does(
    pneumonia_run: Path, pneumonia_test_images: np.ndarray, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image in enumerate(pneumonia_test_images[:3]):
        PIL.Image.fromarray(image.astype(np.uint8)).save(folder / f"t{i:03d}.png")
    (folder / "notes.txt").write_text("not an image")  # passed over, as predict does
    out = tmp_path / "model.onnx"
    result = _export(str(pneumonia_run), "--out", str(out), "--check", str(folder))
    assert result.exit_code == 0, result.output
    assert "on 3 images" in result.output and out.is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = _export(str(pneumonia_run), "--out", str(tmp_path / "x.onnx"), "--check", str(empty))
    assert result.exit_code == 2 and "holds no image" in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_an_ensemble_folder_is_refused_naming_its_members(tmp_path: Path) -> None:
    members = [str(tmp_path / "runs" / name) for name in ("cnn_a", "cnn_b")]
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    record = {"method": "soft", "members": [{"run": m, "name": Path(m).name} for m in members]}
    (ensemble / "ensemble.json").write_text(json.dumps(record))
    result = _export(str(ensemble))
    assert result.exit_code == 2, result.output
    assert "cannot be exported as one ONNX file" in result.output
    assert all(m in result.output for m in members) and "model.pt" not in result.output
    assert _files(ensemble) == ["ensemble.json"]
