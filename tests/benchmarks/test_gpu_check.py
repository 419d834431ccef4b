"""benchmarks/gpu_check.sh refuses clearly where it cannot give a GPU figure, and keeps the
training figures when its surface-metric part fails.

The GPU run itself needs a lent GPU (see the script); these tests check what it does on a
machine without one, which is every CI machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MEDLENS_PYTHON": "", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )


def test_a_missing_data_folder_is_named(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "data not found under" in result.stderr and "nowhere" in result.stderr


def test_without_a_gpu_it_stops_at_once_and_says_why(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    # No GPU is visible (CUDA_VISIBLE_DEVICES is empty, on any machine), and MEDLENS_PYTHON
    # names this Python: the script must not take it on trust and run on the CPU.
    result = _run(
        str(shared_data), OUT_JSON=str(out), MEDLENS_PYTHON=sys.executable, CUDA_VISIBLE_DEVICES=""
    )
    assert result.returncode == 1, result.stderr
    assert "CUDA" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_surface_part_that_fails_still_leaves_the_training_figures(
    shared_data: Path, tmp_path: Path
) -> None:
    """On the H200 the CPU surface metrics ran past their limit and the script stopped before
    writing gpu.json, losing both trainings' figures. A dry run (ALLOW_CPU=1) whose surface part
    is given one second must still write gpu.json, with no surface figures: not the
    development machine's committed ones either."""
    out = tmp_path / "gpu.json"
    result = _run(
        str(shared_data),
        OUT_JSON=str(out),
        WORK_DIR=str(tmp_path / "work"),
        ALLOW_CPU="1",
        CUDA_VISIBLE_DEVICES="",
        MEDLENS_PYTHON=sys.executable,
        CLS_MINUTES="0.05",
        CLS_EPOCHS="1",
        SEG_MINUTES="0.05",
        LOADER_WORKERS="0",
        SURFACE_LIMIT="1",
        CLS_EXTRA="--set data.train_fraction_used=0.05",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the surface metrics did not finish" in result.stderr
    report = json.loads(out.read_text())
    assert report["classification"]["epochs_run"] == 1
    assert report["segmentation"]["epochs_run"] >= 1
    assert report["surface_metrics_quick"] == {"wall_seconds": None, "results": None}
