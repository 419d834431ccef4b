"""benchmarks/pipeline.py --merge: reports over disjoint seeds joined into one give what one
summary of all the runs gives, so seeds run in different sessions make one protocol."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import pipeline  # noqa: E402

CLASSES = ["neutrophil", "lymphocyte", "monocyte"]
FOLDS_RUN = [0, 1]
SEGMENTING = {"four_phase", "unet_inception", "cascade", "gt_masks"}


def _fake_run(run: Path, system: str, fold: int, rng: np.random.Generator) -> None:
    run.mkdir(parents=True)
    truth = [CLASSES[i % 3] for i in range(12)]
    probs = rng.dirichlet(np.ones(3), size=12)
    lines = ["case_id,truth," + ",".join(f"p_{c}" for c in CLASSES)]
    for i, (t, p) in enumerate(zip(truth, probs, strict=True)):
        lines.append(f"f{fold}c{i},{t}," + ",".join(f"{x:.6f}" for x in p))
    (run / "predictions.csv").write_text("\n".join(lines) + "\n")
    metrics: dict[str, Any] = {"kind": "pipeline", "fold": fold, "folds": 5, "segmentation": {}}
    if system in SEGMENTING:
        metrics["segmentation"] = {
            "segment": {r: {"mean": float(rng.uniform(0.8, 1))} for r in ("nucleus", "cell")}
        }
        metrics["with_reference_masks"] = {
            "balanced_accuracy": {"value": float(rng.uniform(0.5, 1))}
        }
        metrics["error_sources"] = {
            k: int(rng.integers(0, 9)) for k in ("right_both", "wrong_both")
        }
    (run / "metrics.json").write_text(json.dumps(metrics))
    timing = {"wall_minutes": float(rng.uniform(1, 5)), "cpu_minutes": float(rng.uniform(2, 9))}
    (run.parent / f"{system}.timing.json").write_text(json.dumps(timing))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-bench")
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        for fold in FOLDS_RUN:
            for system in pipeline.SYSTEMS:
                _fake_run(root / f"seed{seed}" / f"fold{fold}" / system, system, fold, rng)
    return root


@pytest.fixture(scope="module")
def reports(work: Path) -> dict[str, dict[str, Any]]:
    """Reports over seeds 0-2, 0-1, 1-2 and 2 (50 bootstrap resamples keep it quick)."""
    return {
        key: pipeline.build_report(work, list(pipeline.SYSTEMS), seeds, 5, FOLDS_RUN, 1.0, 50)
        for key, seeds in {"012": [0, 1, 2], "01": [0, 1], "12": [1, 2], "2": [2]}.items()
    }


def _assert_close(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), where
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-12), where
    else:
        assert a == b, where


def test_joined_reports_equal_one_summary_of_all_runs(reports: dict[str, Any]) -> None:
    whole = reports["012"]
    joined = pipeline.merge_reports([reports["2"], reports["01"]])
    _assert_close(whole["systems"], joined["systems"], "systems")
    assert joined["summary"] == pytest.approx(whole["summary"])
    assert joined["seeds"] == [0, 1, 2]
    assert [p["seeds"] for p in joined["parts"]] == [[0, 1], [2]]
    # two folds were run, not five: the protocol is not complete
    assert joined["protocol_complete"] is False


def test_reports_that_share_a_seed_or_differ_in_folds_are_refused(
    reports: dict[str, Any],
) -> None:
    first = reports["01"]
    with pytest.raises(ValueError, match="share seeds"):
        pipeline.merge_reports([first, reports["12"]])
    other_folds = {**reports["2"], "folds_run": [0]}
    with pytest.raises(ValueError, match="folds_run"):
        pipeline.merge_reports([first, other_folds])


def _merge_cli(folder: Path, *parts: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``pipeline.py --merge`` of ``parts`` (written to ``folder``) into ``folder/joined.json``."""
    paths = [folder / f"part{i}.json" for i in range(len(parts))]
    for path, part in zip(paths, parts, strict=True):
        path.write_text(json.dumps(part))
    args = [str(REPO / "benchmarks" / "pipeline.py"), "--merge", *map(str, paths)]
    return subprocess.run(
        [sys.executable, *args, "--out", str(folder / "joined.json")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_merge_from_the_command_line_writes_json_and_markdown(
    reports: dict[str, Any], tmp_path: Path
) -> None:
    proc = _merge_cli(tmp_path, reports["01"], reports["2"])
    out = tmp_path / "joined.json"
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["seeds"] == [0, 1, 2]
    assert "Joined from reports over disjoint seeds" in out.with_suffix(".md").read_text()


def test_merge_of_reports_that_share_a_seed_is_one_error_line(
    reports: dict[str, Any], tmp_path: Path
) -> None:
    proc = _merge_cli(tmp_path, reports["01"], reports["12"])
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: --merge") and "share seeds" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "joined.json").exists()
