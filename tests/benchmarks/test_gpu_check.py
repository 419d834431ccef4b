"""benchmarks/gpu_check.sh refuses clearly where it cannot give a GPU figure.

The GPU run itself needs a lent GPU (see the script); these tests check what it does on a
machine without one, which is every CI machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MEDLENS_PYTHON": "", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
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
