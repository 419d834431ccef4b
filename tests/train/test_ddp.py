"""The trainer under torchrun with 2 CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.mark.ddp
def test_torchrun_two_processes_writes_one_run(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    # A time budget and early stopping make every rank follow rank 0's stop decision.
    tiny_config["train"].update(epochs=2, max_minutes=5, early_stopping_patience=1)
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "-m",
            "medlens.cli",
            "train",
            str(config),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(tiny_config["output_dir"]) / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["n"] == 624
    assert not (run.parent / "tiny.partial").exists()
    assert 1 <= metrics["epochs_run"] <= 2
    import pandas as pd

    history = pd.read_csv(run / "history.csv")
    assert len(history) == metrics["epochs_run"]
