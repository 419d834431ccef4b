"""benchmarks/pipeline.py: a finished run is reused only when its config is the one the
shipped configs/wbc/ file gives now; a run made from an edited config is trained again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import pipeline  # noqa: E402


def _finished_run(work: Path, config: dict[str, Any]) -> Path:
    out = work / "seed0" / "fold1"
    (out / "cascade").mkdir(parents=True)
    (out / "cascade" / "metrics.json").write_text("{}")
    (out / "cascade.timing.json").write_text(json.dumps({"wall_minutes": 1.0, "cpu_minutes": 2.0}))
    (out / "cascade.yaml").write_text(yaml.safe_dump(config))
    return out


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(pipeline.subprocess, "run", fake_run)
    return calls


def test_a_run_from_the_same_config_is_reused(tmp_path: Path, trainings: list) -> None:
    out = tmp_path / "seed0" / "fold1"
    _finished_run(tmp_path, pipeline.system_config("cascade", 0, 1, 5, out))
    timing = pipeline.run_system("cascade", 0, 1, 5, tmp_path)
    assert timing == {"wall_minutes": 1.0, "cpu_minutes": 2.0}
    assert trainings == []


def test_a_run_from_an_edited_config_is_trained_again(
    tmp_path: Path, trainings: list, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "seed0" / "fold1"
    old = pipeline.system_config("cascade", 0, 1, 5, out)
    old["stages"][0]["crossfit_folds"] = 7
    _finished_run(tmp_path, old)
    timing = pipeline.run_system("cascade", 0, 1, 5, tmp_path)
    assert len(trainings) == 1 and trainings[0][-3:] == [
        str(out / "cascade.yaml"),
        "--quiet",
        "--overwrite",
    ]
    assert "config changed" in capsys.readouterr().out
    assert yaml.safe_load((out / "cascade.yaml").read_text()) == pipeline.system_config(
        "cascade", 0, 1, 5, out
    )
    assert json.loads((out / "cascade.timing.json").read_text()) == timing
    assert timing["wall_minutes"] < 1.0  # the new timing, not the stale one
