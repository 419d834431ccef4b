"""Ensembles of real PneumoniaMNIST runs: two small CNNs (seeds 0, 1; one epoch on 5% of the
training split) and a handcrafted-feature logistic regression, all on the official val/test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medlens.commands.ensemble import ensemble_runs
from medlens.config import parse_config
from medlens.errors import ConfigError, InputError
from medlens.metrics import choose_threshold
from medlens.train.deep.run import train_from_config

PROBS = ["prob_normal", "prob_pneumonia"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def member_runs(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from medlens.train.classical.run import train_classical

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("members")
    data = {"format": "medmnist", "path": str(pneumonia_npz), "train_fraction_used": 0.05}
    runs = []
    for seed in (0, 1):
        raw = {
            "name": f"cnn-s{seed}",
            "seed": seed,
            "output_dir": str(out),
            "data": data,
            "preprocess": [{"name": "fixed_scale", "divisor": 255}],
            "model": {"name": "small_cnn"},
            "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 0.5},
            "evaluate": {"n_bootstrap": 0},
        }
        runs.append(train_from_config(parse_config(raw), progress=False))
    raw = {
        "name": "handcrafted",
        "output_dir": str(out),
        "data": data,
        "features": {"families": ["firstorder"]},
        "evaluate": {"n_bootstrap": 0},
    }
    runs.append(train_classical(parse_config(raw), progress=False))
    return runs


def _members(runs: list[Path], split: str) -> list[pd.DataFrame]:
    """Each member's rows of ``split``, ordered like the first member's."""
    tables = [pd.read_csv(r / "predictions.csv", dtype={"case_id": str}) for r in runs]
    order = tables[0].loc[tables[0]["split"] == split, "case_id"]
    return [t[t["split"] == split].set_index("case_id").loc[order] for t in tables]


def _ensemble(run: Path, split: str) -> pd.DataFrame:
    table = pd.read_csv(run / "predictions.csv", dtype={"case_id": str})
    return table[table["split"] == split].set_index("case_id")


def test_soft_ensemble_is_the_mean_and_a_complete_run_folder(
    member_runs: list[Path], tmp_path: Path
) -> None:
    run = ensemble_runs(member_runs, "soft", tmp_path, n_bootstrap=50)
    for name in ("config.yaml", "ensemble.json", "labels.json", "metrics.json", "predictions.csv"):
        assert (run / name).is_file(), name
    assert (run / "report.html").is_file() and (run / "model_card.md").is_file()
    for split in ("val", "test"):
        members = _members(member_runs, split)
        mean = np.mean([m[PROBS].to_numpy() for m in members], axis=0)
        ours = _ensemble(run, split).loc[members[0].index]
        np.testing.assert_allclose(ours[PROBS].to_numpy(), mean, atol=1e-9)
        assert list(ours["label"]) == list(members[0]["label"])
    val, test = _ensemble(run, "val"), _ensemble(run, "test")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["threshold"] == pytest.approx(
        choose_threshold(val["label"], val["prob_pneumonia"], "youden_plateau")
    )
    auc = metrics["splits"]["test"]["metrics"]["auc"]["value"]
    assert auc == pytest.approx(roc_auc_score(test["label"], test["prob_pneumonia"]))
    fitted = json.loads((run / "ensemble.json").read_text())
    assert [m["weight"] for m in fitted["members"]] == pytest.approx([1 / 3] * 3)


def test_weighted_ensemble_minimises_validation_log_loss(
    member_runs: list[Path], tmp_path: Path
) -> None:
    run = ensemble_runs(member_runs, "weighted", tmp_path, n_bootstrap=0, documents=False)
    weights = np.array(json.loads((run / "ensemble.json").read_text())["combiner"]["weights"])
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    val = _members(member_runs, "val")
    y = val[0]["label"].to_numpy()

    picked = np.array([m[PROBS].to_numpy()[np.arange(len(y)), y] for m in val])  # p(true class)

    def loss(w: np.ndarray) -> float:
        return float(-np.log(np.clip(w @ picked, 1e-15, None)).mean())

    grid = [np.array([a, b, 20 - a - b]) / 20 for a in range(21) for b in range(21 - a)]
    assert loss(weights) <= min(loss(g) for g in grid) + 1e-6
    test = _members(member_runs, "test")
    expected = sum(w * m[PROBS].to_numpy() for w, m in zip(weights, test, strict=True))
    ours = _ensemble(run, "test").loc[test[0].index, PROBS].to_numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_stacking_is_a_logistic_regression_on_validation_log_odds(
    member_runs: list[Path], tmp_path: Path
) -> None:
    run = ensemble_runs(member_runs, "stacking", tmp_path, n_bootstrap=0, documents=False)

    def log_odds(tables: list[pd.DataFrame]) -> np.ndarray:
        p = np.column_stack([t["prob_pneumonia"].to_numpy() for t in tables])
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    val, test = _members(member_runs, "val"), _members(member_runs, "test")
    model = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000)
    model.fit(log_odds(val), val[0]["label"])
    expected = model.predict_proba(log_odds(test))[:, 1]
    ours = _ensemble(run, "test").loc[test[0].index, "prob_pneumonia"].to_numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # Validation rows are cross-fitted, not the in-sample fit; the threshold comes from them.
    in_sample = model.predict_proba(log_odds(val))[:, 1]
    ours_val = _ensemble(run, "val").loc[val[0].index]
    assert not np.allclose(ours_val["prob_pneumonia"].to_numpy(), in_sample, atol=1e-4)
    fitted = json.loads((run / "ensemble.json").read_text())
    assert fitted["cross_fitted_val"] and fitted["folds"] == 5
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["threshold"] == pytest.approx(
        choose_threshold(ours_val["label"], ours_val["prob_pneumonia"], "youden_plateau")
    )


def _copy_with(runs: list[Path], out: Path, edit) -> list[Path]:
    copies = []
    for run in runs:
        copy = out / run.name
        shutil.copytree(run, copy)
        table = pd.read_csv(copy / "predictions.csv", dtype={"case_id": str})
        edit(table, run)
        table.to_csv(copy / "predictions.csv", index=False)
        copies.append(copy)
    return copies


@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_combiner_and_threshold_do_not_depend_on_the_test_split(
    member_runs: list[Path], tmp_path: Path, method: str
) -> None:
    rng = np.random.default_rng(0)
    flip = rng.random(624) < 0.5

    def scramble_test(table: pd.DataFrame, _: Path) -> None:
        test = table["split"] == "test"
        table.loc[test, "label"] = np.where(
            flip, 1 - table.loc[test, "label"], table.loc[test, "label"]
        )
        p = rng.random(int(test.sum()))
        table.loc[test, "prob_pneumonia"] = p
        table.loc[test, "prob_normal"] = 1 - p

    original = ensemble_runs(member_runs, method, tmp_path / "a", n_bootstrap=0, documents=False)
    scrambled = _copy_with(member_runs, tmp_path / "copies", scramble_test)
    changed = ensemble_runs(scrambled, method, tmp_path / "b", n_bootstrap=0, documents=False)
    a = json.loads((original / "ensemble.json").read_text())["combiner"]
    b = json.loads((changed / "ensemble.json").read_text())["combiner"]
    assert a == b
    ta = json.loads((original / "labels.json").read_text())["threshold"]
    tb = json.loads((changed / "labels.json").read_text())["threshold"]
    assert ta == tb
    val_a, val_b = _ensemble(original, "val"), _ensemble(changed, "val")
    np.testing.assert_array_equal(val_a[PROBS].to_numpy(), val_b[PROBS].to_numpy())


def test_runs_on_other_cases_or_labels_are_refused_naming_both(
    member_runs: list[Path], tmp_path: Path
) -> None:
    def drop_a_val_case(table: pd.DataFrame, run: Path) -> None:
        if run == member_runs[1]:
            table.drop(index=table.index[table["split"] == "val"][0], inplace=True)

    def flip_a_test_label(table: pd.DataFrame, run: Path) -> None:
        if run == member_runs[1]:
            row = table.index[table["split"] == "test"][3]
            table.loc[row, "label"] = 1 - table.loc[row, "label"]

    for i, edit in enumerate((drop_a_val_case, flip_a_test_label)):
        runs = _copy_with(member_runs, tmp_path / f"bad{i}", edit)
        with pytest.raises(InputError) as info:
            ensemble_runs(runs, "soft", tmp_path / f"out{i}", n_bootstrap=0, documents=False)
        message = str(info.value)
        assert str(runs[0]) in message and str(runs[1]) in message
        assert ("val case(s) missing" if i == 0 else "test label(s) differ") in message
        assert not (tmp_path / f"out{i}").exists()


def test_bad_arguments(member_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown method"):
        ensemble_runs(member_runs, "voting", tmp_path)
    with pytest.raises(InputError, match="2\\+ runs"):
        ensemble_runs(member_runs[:1], "soft", tmp_path)
    ensemble_runs(member_runs[:2], "soft", tmp_path, name="pair", n_bootstrap=0, documents=False)
    with pytest.raises(ConfigError, match="already exists"):
        ensemble_runs(member_runs[:2], "soft", tmp_path, name="pair")


def test_cli_ensemble(member_runs: list[Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medlens.cli import app

    out = tmp_path / "ens"
    result = CliRunner().invoke(
        app, ["ensemble", *map(str, member_runs), "--method", "soft", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()


def test_the_model_card_names_the_members_and_their_weights(
    member_runs: list[Path], tmp_path: Path
) -> None:
    run = ensemble_runs(member_runs, method="weighted", out_dir=tmp_path, name="w")
    card = (run / "model_card.md").read_text()
    assert "weighted ensemble of" in card
    assert all(m.name in card for m in member_runs)
    assert "(weight " in card and "`ensemble.json` (the model)" in card


def test_the_ensemble_records_the_ood_flags_its_predictions_have(
    member_runs: list[Path], tmp_path: Path
) -> None:
    """metrics.json, the report and the model card count the flags of predictions.csv: a
    case is flagged when any member flags it, as each member's own predictions.csv says."""
    from html import unescape

    run = ensemble_runs(member_runs, "soft", tmp_path, n_bootstrap=0)
    ood = json.loads((run / "metrics.json").read_text())["trust"]["ood"]
    html = unescape((run / "report.html").read_text())
    card = (run / "model_card.md").read_text()
    for split, title in (("val", "validation"), ("test", "test")):
        members = _members(member_runs, split)
        ours = _ensemble(run, split).loc[members[0].index]
        flags = [m["ood"].to_numpy() > 0 for m in members if "ood" in m.columns]
        assert flags, "the CNN members have the score"
        assert ((ours["ood"].to_numpy() > 0) == np.any(flags, axis=0)).all()
        np.testing.assert_array_equal(ours["ood_score"], np.sum(flags, axis=0))
        flagged = int(ours["ood"].sum())
        assert flagged > 0 and ood["splits"][split]["flagged"] == flagged
        assert ood["splits"][split]["n"] == len(ours)
        assert f"<td>{title}</td><td>{len(ours)}</td><td>{flagged}</td>" in html
        assert f"| {title} | {len(ours)} | {flagged} |" in card
        assert list(ours["pred_label"]) == [PROBS[p].removeprefix("prob_") for p in ours["pred"]]
    # each flagging member's own threshold and false-alarm rate, from its metrics.json
    assert len(ood["members"]) + len(ood["members_without_score"]) == len(member_runs)
    for entry in ood["members"]:
        own = json.loads((Path(entry["run"]) / "metrics.json").read_text())["trust"]["ood"]
        assert entry["threshold"] == own["threshold"]
        assert entry["false_alarm_rate"] == own["false_alarm_rate"]
        assert f"{entry['name']} ({own['score']}) flags a case above" in html
    assert "when any member run flags it" in html and "when any member run flags it" in card
    assert "This run has no out-of-distribution score" not in html
    assert "A case flagged out of distribution is referred too." in html


def test_the_ensemble_estimates_the_test_mix_from_the_cases_predict_uses(
    member_runs: list[Path], tmp_path: Path
) -> None:
    """The test split's class mix is estimated from the cases no member flags out of
    distribution, as ``medlens predict --adapt-prior`` does with the ensemble's
    probabilities."""
    from medlens.inference.classify import _adapt_rows
    from medlens.run_folder.trust import read_source_prior

    run = ensemble_runs(member_runs, "soft", tmp_path, n_bootstrap=0, documents=False)
    shift = json.loads((run / "metrics.json").read_text())["trust"]["calibration"]["prior_shift"]
    test = _ensemble(run, "test")
    flagged = (test["ood"] > 0).to_numpy()
    assert flagged.any()
    assert shift["n_cases"] == (~flagged).sum()
    assert shift["out_of_distribution_left_out"] == flagged.sum()
    assert shift["true_prior"]["pneumonia"] == pytest.approx(test.loc[~flagged, "label"].mean())
    rows = test[[*PROBS, "ood"]].to_dict("records")
    predicted = _adapt_rows(rows, ["normal", "pneumonia"], read_source_prior(run, 2), run)
    assert predicted["n_cases"] == shift["n_cases"]
    # the same cases and the same bootstrap seed (0): the same estimate and interval
    assert shift["target_prior"] == pytest.approx(predicted["target_prior"])
    for name in ("normal", "pneumonia"):
        assert shift["target_prior_95ci"][name] == pytest.approx(
            predicted["target_prior_95ci"][name]
        )


def _refused(runs: list[Path], out: Path) -> str:
    with pytest.raises(InputError) as info:
        ensemble_runs(runs, "soft", out, n_bootstrap=0, documents=False)
    assert not out.exists()
    return str(info.value)


def test_segmentation_and_detection_runs_are_refused_up_front_naming_the_run(
    drive_run: Path, cells_run: Path, member_runs: list[Path], tmp_path: Path
) -> None:
    second = tmp_path / "vessels-again"
    shutil.copytree(drive_run, second)
    combines = "`medlens ensemble` combines classification runs"
    assert _refused([drive_run, second], tmp_path / "o1") == (
        f"{drive_run}: is a segmentation run; {combines} (deep, classical, hybrid, or "
        "ensembles of them) by their per-case class probabilities"
    )
    # named wherever it stands among classification runs, and before any file is checked
    message = _refused([member_runs[0], drive_run], tmp_path / "o2")
    assert message.startswith(f"{drive_run}: is a segmentation run; {combines}")
    assert _refused([cells_run, member_runs[0]], tmp_path / "o3").startswith(
        f"{cells_run}: is a detection run; {combines}"
    )
    pipeline = tmp_path / "wbc-pipeline"
    pipeline.mkdir()
    (pipeline / "config.yaml").write_text("kind: pipeline\nname: wbc-pipeline\n")
    assert "is a pipeline run" in _refused([pipeline, member_runs[0]], tmp_path / "o4")

    from typer.testing import CliRunner

    from medlens.cli import app

    result = CliRunner().invoke(
        app, ["ensemble", str(drive_run), str(second), "--out", str(tmp_path / "o5")]
    )
    assert result.exit_code != 0 and "is a segmentation run" in result.output
    assert "metrics.json" not in result.output
