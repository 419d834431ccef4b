"""benchmarks/classification.py --reuse: runs finished in an earlier session are taken by
dataset, method and seed, only the rest are trained, and a report with another budget is
refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import classification  # noqa: E402


def _run(auc: float, seed: int | None = None) -> dict[str, Any]:
    run: dict[str, Any] = {
        "test_auc": auc,
        "test_acc_at_val_threshold": 0.8,
        "test_acc_at_0.5": 0.8,
        "train_minutes": 1.0,
        "peak_rss_mb": 100.0,
    }
    if seed is not None:
        run["seed"] = seed
    return run


def _write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(json.dumps(report))
    return path


def test_a_one_dataset_report_gives_its_runs_the_seeds_in_order(tmp_path: Path) -> None:
    report = {
        "minutes_per_run": 15.0,
        "dataset": "pneumonia",
        "seeds": [4, 7],
        "medlens": {"runs": [_run(0.91), _run(0.92)]},
    }
    found = classification.reusable_runs(_write(tmp_path / "r.json", report), 15.0)
    assert {k: v["test_auc"] for k, v in found.items()} == {
        ("pneumonia", "medlens", 4): 0.91,
        ("pneumonia", "medlens", 7): 0.92,
    }


def test_a_partial_report_keeps_each_runs_own_seed(tmp_path: Path) -> None:
    report = {
        "minutes_per_run": 15.0,
        "seeds": [0, 1, 2],
        "baseline_seeds": [0],
        "runs_so_far": {"adrenal": {"medlens": [_run(0.88, seed=2)], "baseline": []}},
    }
    found = classification.reusable_runs(_write(tmp_path / "r.partial.json", report), 15.0)
    assert list(found) == [("adrenal", "medlens", 2)]


def test_a_report_with_another_budget_is_refused(tmp_path: Path) -> None:
    report = {"minutes_per_run": 7.0, "datasets": {}, "seeds": [0], "baseline_seeds": [0]}
    with pytest.raises(SystemExit, match="7.0 min each"):
        classification.reusable_runs(_write(tmp_path / "r.json", report), 15.0)


def _main_with(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    earlier: dict,
    options: list[str],
    new_auc: float,
) -> tuple[list[tuple[str, str, int]], dict]:
    """Run the benchmark's main with ``--reuse`` of ``earlier`` and a fake trainer whose runs
    score ``new_auc``; return the runs it trained and the report it wrote."""
    spawned: list[tuple[str, str, int]] = []

    def fake_spawn(kind: str, dataset: str, seed: int, *args: Any, **kwargs: Any) -> dict:
        spawned.append((kind, dataset, seed))
        return _run(new_auc, seed=seed)

    monkeypatch.setattr(classification, "_spawn", fake_spawn)
    out = tmp_path / "out.json"
    argv = ["classification.py", "--skip-transfer", "--out", str(out), *options]
    argv += ["--reuse", str(_write(tmp_path / "earlier.json", earlier))]
    monkeypatch.setattr(sys, "argv", argv)
    classification.main()
    return spawned, json.loads(out.read_text())


def test_main_trains_only_the_runs_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = {
        "minutes_per_run": 15.0,
        "dataset": "pneumonia",
        "seeds": [0, 1],
        "medlens": {"runs": [_run(0.90), _run(0.94)]},
    }
    options = ["--datasets", "pneumonia", "--seeds", "0", "1", "--baseline-seeds", "0"]
    spawned, report = _main_with(tmp_path, monkeypatch, earlier, options, new_auc=0.70)

    assert spawned == [("baseline", "pneumonia", 0)]
    medlens = report["datasets"]["pneumonia"]["medlens"]
    assert medlens["test_auc"]["values"] == [0.90, 0.94]
    assert all(run["reused"] for run in medlens["runs"])
    assert report["summary"]["baseline_pneumonia_test_auc"] == 0.70


def test_reuse_kind_baseline_trains_the_medlens_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = {
        "minutes_per_run": 15.0,
        "dataset": "adrenal",
        "seeds": [0],
        "baseline_seeds": [0],
        "medlens": {"runs": [_run(0.90)]},
        "baseline": {"runs": [_run(0.86)]},
    }
    options = ["--datasets", "adrenal", "--seeds", "0", "--baseline-seeds", "0"]
    options += ["--reuse-kind", "baseline"]
    spawned, report = _main_with(tmp_path, monkeypatch, earlier, options, new_auc=0.92)

    assert spawned == [("medlens", "adrenal", 0)]
    assert report["reused_kinds"] == ["baseline"]
    assert report["summary"]["adrenal_test_auc"] == 0.92
    assert report["summary"]["baseline_adrenal_test_auc"] == 0.86
    assert report["datasets"]["adrenal"]["baseline"]["runs"][0]["reused"]


def test_held_out_figures_give_each_class_s_rate_at_both_thresholds(pneumonia_run: Path) -> None:
    import pandas as pd

    figures = classification.held_out_figures(pneumonia_run)
    table = pd.read_csv(pneumonia_run / "predictions.csv")
    test = table[table["split"] == "test"]
    positive = test.columns[test.columns.str.startswith("prob_")][1]
    truth = test["label"].to_numpy() == 1
    for key, threshold in (
        ("test_sens_spec_at_0.5", 0.5),
        ("test_sens_spec_at_val_threshold", figures["val_threshold"]),
    ):
        called = test[positive].to_numpy() >= threshold
        sens, spec = figures[key]
        assert sens == pytest.approx((called & truth).sum() / truth.sum()), key
        assert spec == pytest.approx((~called & ~truth).sum() / (~truth).sum()), key
