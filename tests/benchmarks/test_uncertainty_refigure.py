"""benchmarks/uncertainty.py: the classification figures of a run come from its own files
(the class-stratified order, every other order's gain at 80% coverage, the class-weighted
AURC), and ``--refigure`` computes them again from kept runs without training."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import uncertainty  # noqa: E402


def _stale_report(figures: dict, path: Path, seeds: int = 1) -> Path:
    """A report whose classification runs hold -1 wherever ``figures`` holds a float (its
    counts, flags and names as they are)."""
    stale = {k: -1.0 for k in figures if isinstance(figures[k], float)}
    stale.update({k: v for k, v in figures.items() if isinstance(v, (bool, int, str))})
    stale.update(sens_spec_rule=(0.0, 0.0), sens_spec_youden_raw=(0.0, 0.0))
    ood = {s: {"auroc": 0.9, "flagged": 0.5} for s in ("site_b", "fundus_28px")}
    drive = {
        "spearman_uncertainty_dice": -0.6,
        "spearman_mean_entropy_dice": -0.1,
        "test_dice_mean": 0.8,
    }
    runs = {
        "pneumonia": [stale] * seeds,
        "adrenal": [stale] * seeds,
        "ood": [ood] * seeds,
        "drive": [drive] * seeds,
    }
    path.write_text(json.dumps({"runs": runs}))
    return path


def test_retrain_trains_one_datasets_seeds_again_and_keeps_the_rest(
    pneumonia_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = uncertainty.classification_figures(pneumonia_run)
    report_path = _stale_report(figures, tmp_path / "uncertainty.json", seeds=2)
    stale = json.loads(report_path.read_text())
    report_path.write_text(json.dumps({**stale, "refigured": {"date": "earlier"}}))
    calls = []

    def fake_train(kind: str, seed: int, minutes: float, out: Path) -> Path:
        calls.append((kind, seed, minutes))
        return pneumonia_run

    monkeypatch.setattr(uncertainty, "train", fake_train)
    report = uncertainty.retrain(report_path, "adrenal", 15.0, keep_runs=tmp_path / "kept")
    assert calls == [("adrenal", 0, 15.0), ("adrenal", 1, 15.0)]
    assert [r["aurc"] for r in report["runs"]["adrenal"]] == [pytest.approx(figures["aurc"])] * 2
    assert [r["aurc"] for r in report["runs"]["pneumonia"]] == [-1.0, -1.0]
    assert report["datasets"]["adrenal"]["aurc"]["mean"] == pytest.approx(figures["aurc"], abs=1e-4)
    assert report["summary"]["ece_rel_drop_pneumonia"] == -1.0
    assert report["ood"]["site_b"]["auroc"]["mean"] == 0.9
    assert report["refigured"]["retrained_since"] == ["adrenal"]
    (entry,) = report["retrained"]
    assert entry["dataset"] == "adrenal" and entry["minutes"] == 15.0
    assert entry["recipe"] == "configs/adrenalmnist3d_small_cnn.yaml"
    assert (tmp_path / "kept" / pneumonia_run.name / "predictions.csv").exists()


def test_figures_of_a_run_and_refigure_from_kept_runs(pneumonia_run: Path, tmp_path: Path):
    figures = uncertainty.classification_figures(pneumonia_run)
    assert figures["selective_order"] == "stratified"
    for key in (
        "bal_acc_gain_at_80_cov_decision",
        "bal_acc_gain_at_80_cov_margin",
        "bal_acc_gain_at_80_cov_max_softmax",
        "aurc_weighted_gain_vs_maxsoftmax",
    ):
        assert isinstance(figures[key], float), key
    metrics = json.loads((pneumonia_run / "metrics.json").read_text())
    assert figures["aurc"] == pytest.approx(metrics["trust"]["selective"]["test"]["aurc"])
    # the top-label ECE beside the key's: the same figure as the run recorded
    recorded_ece = metrics["trust"]["calibration"]["splits"]["test"]
    for when in ("before", "after"):
        assert figures[f"test_ece_top_label_{when}"] == pytest.approx(
            recorded_ece[f"ece_top_label_{when}"], abs=1e-4
        )
    # The classification benchmark's figures of the same run, from its own metrics.json
    test = metrics["splits"]["test"]
    assert figures["test_auc"] == test["metrics"]["auc"]["value"]
    assert figures["test_acc_at_val_threshold"] == test["metrics"]["accuracy"]["value"]
    assert figures["test_acc_at_0.5"] == test["metrics_at_0.5"]["accuracy"]
    assert figures["epochs"] == metrics["epochs_run"] >= 1
    # Every calibrator refitted from the CSV's raw validation probabilities: the default one
    # gives the ECE the run recorded, and the choice is the lowest held-out validation loss.
    compared = figures["calibrators"]
    assert set(compared["methods"]) == {"none", "temperature", "bcts", "dirichlet", "isotonic"}
    temperature = compared["methods"]["temperature"]
    assert temperature["test_ece"] == pytest.approx(figures["test_ece_after"], abs=1e-4)
    assert compared["methods"]["none"]["ece_rel_drop"] == pytest.approx(0.0, abs=1e-4)
    losses = {m: v["val_cv_log_loss"] for m, v in compared["methods"].items()}
    assert compared["chosen"] == min(losses, key=losses.__getitem__)
    assert compared["methods"]["bcts"]["auc_change"] < 1e-12  # two classes: ranking kept
    # The test split's mix estimated without labels, recorded by the run and read back
    assert 0 < figures["prior_estimated"] < 1 and 0 <= figures["test_ece_prior_adapted"] <= 1
    low, high = figures["prior_estimated_95ci"]
    assert figures["prior_true_in_interval"] == (low <= figures["prior_true"] <= high)
    # The band recomputed from the validation split is the one today's training recorded.
    assert figures["refer_band"] == figures["refer_band_recorded"]
    # The band alone keeps at least the cases the run kept (it also refers flagged ones).
    recorded = metrics["trust"]["refer"]["splits"]["test"]
    assert 1.0 > figures["band_test_coverage"] >= recorded["coverage"] > 0.5

    kept = tmp_path / "kept"
    for dataset in ("pneumonia", "adrenal"):
        run = tmp_path / "runs" / f"{dataset}-s0"
        shutil.copytree(pneumonia_run, run)
        uncertainty.keep_run(run, kept)
    assert sorted(p.name for p in (kept / "adrenal-s0").iterdir()) == sorted(uncertainty.KEPT_FILES)
    report_path = _stale_report(figures, tmp_path / "uncertainty.json")
    report = uncertainty.refigure(report_path, kept)
    again = report["runs"]["adrenal"][0]
    assert again["aurc"] == pytest.approx(figures["aurc"])
    assert report["summary"]["bal_acc_gain_at_80_cov"] == pytest.approx(
        figures["bal_acc_gain_at_80_cov"], abs=1e-4
    )
    assert report["ood"]["site_b"]["auroc"]["mean"] == 0.9 and "refigured" in report
    # the report's statistics are rounded to 5 decimals
    assert report["classification"]["adrenal_test_auc"] == pytest.approx(
        figures["test_auc"], abs=1e-5
    )
    assert report["classification"]["pneumonia_test_acc"] == pytest.approx(
        figures["test_acc_at_val_threshold"], abs=1e-5
    )
    chosen = report["datasets"]["adrenal"]["calibrators"]["chosen_by_val_cv"]
    assert chosen["each"] == [figures["calibrators"]["chosen"]]
    assert set(report["calibrator_chosen_on_validation"]) == {
        f"ece_rel_drop_{d}_val_chosen_calibrator{s}"
        for d in ("pneumonia", "adrenal")
        for s in ("", "_prior_adapted")
    }
    assert set(report["prior_adapted"]) == {
        "ece_rel_drop_pneumonia_prior_adapted",
        "ece_rel_drop_adrenal_prior_adapted",
    }


def test_refigure_reads_only_the_datasets_it_is_given(pneumonia_run: Path, tmp_path: Path):
    figures = uncertainty.classification_figures(pneumonia_run)
    kept = tmp_path / "kept"
    run = tmp_path / "runs" / "pneumonia-s0"
    shutil.copytree(pneumonia_run, run)
    uncertainty.keep_run(run, kept)  # no adrenal run kept: reading it would fail
    report_path = _stale_report(figures, tmp_path / "uncertainty.json")
    report = uncertainty.refigure(report_path, kept, ("pneumonia",))
    assert report["runs"]["pneumonia"][0]["aurc"] == pytest.approx(figures["aurc"])
    assert report["runs"]["adrenal"][0]["aurc"] == -1.0  # kept as it was
    assert report["refigured"]["datasets"] == ["pneumonia"]
