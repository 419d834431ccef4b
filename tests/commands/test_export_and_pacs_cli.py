"""``medlens export`` and ``medlens pacs`` through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from medlens.cli import app


def test_export_writes_onnx_and_reports_the_parity(pneumonia_run: Path, tmp_path: Path):
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(pneumonia_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "max |ONNX - PyTorch|" in result.output


def test_pacs_process_with_orthanc_down_is_one_line_and_exit_2(pneumonia_run: Path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medlens.cli",
            "pacs",
            "process",
            str(pneumonia_run),
            "--orthanc",
            "http://127.0.0.1:9",
            "--study",
            "1.2.3",
            "--user",
            "u",
            "--password",
            "p",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
