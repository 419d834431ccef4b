"""benchmarks/adrenal_recipe_cv.py: the folds are made of the training split alone (the
official test split never chooses a recipe), and the rule picks a candidate only when it
beats the earlier recipe over every fold's mean."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import adrenal_recipe_cv as cv  # noqa: E402


def _rows(aucs: dict[str, list[float]]) -> list[dict]:
    return [
        {
            "candidate": name,
            "fold": k,
            "test_auc": auc,
            "test_acc_at_val_threshold": 0.8,
            "best_epoch": 5,
            "epochs": 10,
        }
        for name, values in aucs.items()
        for k, auc in enumerate(values)
    ]


def test_the_candidate_with_the_best_mean_is_chosen_when_it_beats_the_earlier_recipe() -> None:
    rows = _rows({"A_current": [0.80, 0.84, 0.82], "C_wd0.05": [0.83, 0.83, 0.83]})
    assert cv.summarise(rows)["chosen"] == "C_wd0.05"


def test_the_earlier_recipe_stays_when_nothing_beats_it() -> None:
    rows = _rows({"A_current": [0.83, 0.83, 0.83], "B_affine": [0.90, 0.70, 0.80]})
    assert cv.summarise(rows)["chosen"] == "A_current"


def test_a_candidate_missing_a_fold_is_not_chosen() -> None:
    rows = _rows({"A_current": [0.80, 0.80, 0.80], "E_rotate_wd0.05": [0.95, 0.95]})
    report = cv.summarise(rows)
    assert report["chosen"] == "A_current"
    assert report["candidates"]["E_rotate_wd0.05"]["complete"] is False


def test_a_later_round_is_measured_against_its_own_baseline() -> None:
    # Round 1 chose C; in round 2, F beats A's mean but not C's, so C stays the recipe.
    rows = _rows(
        {
            "A_current": [0.80, 0.80, 0.80],
            "C_wd0.05": [0.84, 0.84, 0.84],
            "F_wd0.05_ema1": [0.82, 0.82, 0.82],
        }
    )
    first_two = cv.ROUNDS[:2]
    report = cv.summarise(rows, first_two)
    assert [r["chosen"] for r in report["rounds"]] == ["C_wd0.05", "C_wd0.05"]
    assert report["chosen"] == "C_wd0.05"
    rows += _rows({"G_wd0.05_ls0.1": [0.85, 0.85, 0.85]})
    assert cv.summarise(rows, first_two)["chosen"] == "G_wd0.05_ls0.1"
    # Round 3 (the shape of small_cnn) is measured against C too: G won round 2 in this
    # story, yet round 3's baseline is C, as it was the recipe when round 3 was written.
    rows += _rows({"J_wd0.05_16-32": [0.83, 0.83, 0.83]})
    assert [r["chosen"] for r in cv.summarise(rows)["rounds"]][-1] == "C_wd0.05"


def test_every_round_names_known_candidates_and_includes_its_baseline() -> None:
    for round_ in cv.ROUNDS:
        assert round_["baseline"] in round_["candidates"]
        assert set(round_["candidates"]) <= set(cv.CANDIDATES)


def test_folds_partition_the_training_split_and_keep_the_validation_split(
    tmp_path: Path, adrenal_npz: Path, monkeypatch
) -> None:
    monkeypatch.setattr(cv, "SOURCE", adrenal_npz)
    paths = cv.write_folds(tmp_path)
    official = np.load(adrenal_npz)
    n_train = len(official["train_labels"])
    held_out = []
    for path in paths:
        fold = np.load(path)
        assert len(fold["train_labels"]) + len(fold["test_labels"]) == n_train
        np.testing.assert_array_equal(fold["val_images"], official["val_images"])
        held_out.append(fold["test_images"].reshape(len(fold["test_images"]), -1))
    # The held-out thirds together are the training split, case for case, in some order.
    pooled = np.concatenate(held_out)
    train = official["train_images"].reshape(n_train, -1)
    key = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert key(pooled) == key(train)


def test_the_64_cube_file_gives_each_fold_the_same_cases(tmp_path: Path, adrenal_npz: Path) -> None:
    # A stand-in for the 64^3 file: every case of the 28^3 one upsampled by repeating voxels,
    # so a case's 28^3 volume is its large volume's every other voxel.
    official = dict(np.load(adrenal_npz))
    large = tmp_path / "large.npz"
    up = {
        key: value.repeat(2, 1).repeat(2, 2).repeat(2, 3) if key.endswith("_images") else value
        for key, value in official.items()
    }
    np.savez(large, **up)
    small_folds = cv.write_folds(tmp_path, source=adrenal_npz)
    large_folds = cv.write_folds(tmp_path, source=large)
    assert len({*small_folds, *large_folds}) == 2 * cv.FOLDS  # neither overwrites the other
    for small, big in zip(small_folds, large_folds, strict=True):
        a, b = np.load(small), np.load(big)
        for split in ("train", "val", "test"):
            np.testing.assert_array_equal(
                b[f"{split}_images"][:, ::2, ::2, ::2], a[f"{split}_images"]
            )
            np.testing.assert_array_equal(b[f"{split}_labels"], a[f"{split}_labels"])


def test_round_4_candidates_read_the_64_cube_file_and_the_rest_the_28_cube_one() -> None:
    assert cv.source_of("L_wd0.05_64to28") == cv.SOURCE_64
    assert cv.source_of("M_wd0.05_64to32") == cv.SOURCE_64
    assert cv.source_of("C_wd0.05") == cv.SOURCE
    assert set(cv.CANDIDATES) >= cv.FROM_64


def test_round_4_preprocessing_keeps_the_partial_volume_of_a_binary_mask() -> None:
    from medlens.data.image import Image
    from medlens.preprocess.pipeline import build_pipeline

    mask = np.zeros((1, 64, 64, 64), dtype=np.uint8)
    mask[0, 20:45, 18:40, 25:47] = 255  # a box whose faces fall between 28^3 voxels
    image = Image(mask, spacing=(1.0, 1.0, 1.0))
    for name, side in (("L_wd0.05_64to28", 28), ("M_wd0.05_64to32", 32)):
        out = build_pipeline(cv.CANDIDATES[name]["preprocess"])(image).array
        assert out.shape == (1, side, side, side), name
        assert out.min() >= 0.0 and out.max() <= 1.0, name
        partial = np.count_nonzero((out > 0.05) & (out < 0.95))
        assert partial > 0.2 * np.count_nonzero(out >= 0.95), name  # soft faces, not 0/1
        # The volume fraction survives the resampling (within a voxel layer's worth).
        assert abs(out.mean() - mask.mean() / 255) < 0.01, name


def test_every_candidate_makes_a_valid_config_that_builds_its_model(tmp_path: Path) -> None:
    # A candidate whose overrides the config refuses would fail only after the folds before
    # it had trained; check them all up front.
    import classification  # benchmarks/classification.py

    from medlens.config import parse_config
    from medlens.models import create_model

    for name, spec in cv.CANDIDATES.items():
        extra, _ = cv.split_members(spec)
        config = parse_config(classification.medlens_config("adrenal", 0, 4.0, tmp_path, **extra))
        model = create_model(
            config.model.name,
            spatial_dims=3,
            dropout=config.model.dropout,
            channels=config.model.channels,
        )
        widths = [stage[0].out_channels for stage in model.stages()]
        # Every candidate names its blocks: the config's have changed between rounds.
        assert widths == extra["model__channels"], name


def test_a_later_run_adds_its_note_after_the_earlier_report_s(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert cv.joined_note(out, "Round 1 ran.") == "Round 1 ran."
    out.write_text('{"note": "Round 1 ran."}')
    assert cv.joined_note(out, "") == "Round 1 ran."
    assert cv.joined_note(out, "Round 2 ran.") == "Round 1 ran. Round 2 ran."
    out.write_text('{"note": "Round 1 ran. Round 2 ran."}')
    assert cv.joined_note(out, "Round 2 ran.") == "Round 1 ran. Round 2 ran."


def test_the_recipe_holds_the_settings_of_the_candidate_the_rule_chose() -> None:
    # configs/ must be what the cross-validation chose: a config edited without a round that
    # chose it, or a round whose choice was not carried into the config, fails here.
    import json

    import yaml

    report = json.loads((REPO / "benchmarks" / "results" / "adrenal_recipe_cv.json").read_text())
    assert (
        report["chosen"]
        == cv.summarise(
            cv.read_rows(REPO / "benchmarks" / "results" / "adrenal_recipe_cv_rows.jsonl")
        )["chosen"]
    )
    recipe = yaml.safe_load((REPO / "configs" / "adrenalmnist3d_small_cnn.yaml").read_text())
    overrides, members = cv.split_members(cv.CANDIDATES[report["chosen"]])
    assert members == 1, "an ensemble recipe is not a config: carry it into the README first"
    for dotted, value in overrides.items():
        node = recipe
        for part in dotted.split("__"):
            node = node[part]
        assert node == value, dotted
    from_64 = report["chosen"] in cv.FROM_64
    assert recipe["data"]["path"].endswith(
        "adrenalmnist3d_64.npz" if from_64 else "adrenalmnist3d.npz"
    )


def test_the_recipe_gives_the_same_64_cube_volume_from_either_file(
    shared_data: Path, adrenal_npz: Path
) -> None:
    # The recipe trains on the native 64^3 masks; a user's 28^3 volume (MedMNIST's own file)
    # must reach the network at the same size and look like the same gland, and a 64^3 one
    # must reach it as the cross-validation's runs read it (the resize a no-op, then scaled).
    import yaml

    from medlens.data.image import Image
    from medlens.preprocess.pipeline import build_pipeline

    recipe = yaml.safe_load((REPO / "configs" / "adrenalmnist3d_small_cnn.yaml").read_text())
    pipeline = build_pipeline(recipe["preprocess"])
    with np.load(shared_data / "adrenalmnist3d" / "adrenalmnist3d_64.npz") as large:
        big = large["test_images"][:5]
    with np.load(adrenal_npz) as small_file:
        small = small_file["test_images"][:5]
    upsampled = [pipeline(Image(v[None], spacing=(1.0,) * 3)).array for v in small]
    for case in range(5):
        a = pipeline(Image(big[case][None], spacing=(1.0,) * 3)).array
        b = upsampled[case]
        assert a.shape == b.shape == (1, 64, 64, 64)
        np.testing.assert_array_equal(a, big[case][None] / np.float32(255))
        assert b.min() >= 0.0 and b.max() <= 1.0
        # The same case: the two agree voxel by voxel far better than with another case.
        same = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        other = np.corrcoef(a.ravel(), upsampled[(case + 1) % 5].ravel())[0, 1]
        assert same > 0.8 and same > other + 0.2, (case, same, other)


def test_an_ensemble_candidate_shares_the_recipe_s_overrides_and_splits_its_budget() -> None:
    single, one = cv.split_members(cv.CANDIDATES["L_wd0.05_64to28"])
    for name, members in (("N_64to28_2x", 2), ("O_64to28_3x", 3)):
        overrides, count = cv.split_members(cv.CANDIDATES[name])
        assert (overrides, count) == (single, members)
        assert name in cv.FROM_64
    assert one == 1
    with pytest.raises(ValueError, match="members"):
        cv.split_members({"members": 0})


def test_member_seeds_start_at_the_single_run_s_and_never_repeat_across_folds() -> None:
    seeds = [cv.member_seeds(k, 3) for k in range(cv.FOLDS)]
    assert [s[0] for s in seeds] == list(range(cv.FOLDS))  # the single run's seed is the fold
    flat = [seed for fold in seeds for seed in fold]
    assert len(set(flat)) == len(flat)


def test_an_ensemble_row_holds_the_soft_mean_s_held_out_figures_and_the_members_epochs(
    pneumonia_run: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    # Two members: the real run and a copy whose probabilities are pushed towards one class
    # on the test split, so the ensemble's AUC differs from both members' AUCs.
    first = tmp_path / "a" / pneumonia_run.name
    second = tmp_path / "b" / pneumonia_run.name
    shutil.copytree(pneumonia_run, first)
    shutil.copytree(pneumonia_run, second)
    table = pd.read_csv(second / "predictions.csv")
    prob_cols = [c for c in table.columns if c.startswith("prob_")]
    test = table["split"] == "test"
    rng = np.random.default_rng(0)
    shifted = rng.uniform(0.0, 1.0, size=int(test.sum()))
    table.loc[test, prob_cols[1]] = shifted
    table.loc[test, prob_cols[0]] = 1.0 - shifted
    table.to_csv(second / "predictions.csv", index=False)

    member_rows = [
        {"best_epoch": 3, "epochs": 5, "train_minutes": 1.0, "test_auc": 0.7},
        {"best_epoch": 4, "epochs": 6, "train_minutes": 1.5, "test_auc": 0.6},
    ]
    row = cv.ensemble_row([first, second], member_rows, tmp_path / "ensemble")
    original = pd.read_csv(first / "predictions.csv")
    truth = original.loc[test, "label"].to_numpy()
    mean = (original.loc[test, prob_cols[1]].to_numpy() + shifted) / 2
    assert row["test_auc"] == pytest.approx(roc_auc_score(truth, mean))
    metrics = json.loads((tmp_path / "ensemble" / "metrics.json").read_text())
    assert row["val_threshold"] == metrics["threshold"]
    assert row["best_epoch"] == [3, 4] and row["epochs"] == [5, 6]
    assert row["train_minutes"] == pytest.approx(2.5)
    assert row["member_test_auc"] == [0.7, 0.6]


def test_round_6_measures_the_recipe_and_three_members_at_the_full_budget() -> None:
    last = cv.ROUNDS[5]
    assert cv.round_minutes(last) == 15.0
    assert cv.round_minutes(cv.ROUNDS[0]) == cv.DEFAULT_MINUTES == 4.0
    recipe = cv.split_members(cv.CANDIDATES["L_wd0.05_64to28"])
    assert cv.split_members(cv.CANDIDATES[last["baseline"]]) == recipe
    overrides, members = cv.split_members(cv.CANDIDATES["P_64to28_3x_15min"])
    assert (overrides, members) == (recipe[0], 3)
    assert set(last["candidates"]) <= cv.FROM_64


def test_round_7_trains_a_four_block_network_on_the_native_64_cube_at_the_full_budget() -> None:
    import torch

    from medlens.data.image import Image
    from medlens.models import create_model
    from medlens.preprocess.pipeline import build_pipeline

    seventh = cv.ROUNDS[6]
    assert cv.round_minutes(seventh) == 15.0
    assert seventh["baseline"] == "L_64to28_15min"
    name = "Q_native64_8-16-32-64_15min"
    assert name in seventh["candidates"] and cv.source_of(name) == cv.SOURCE_64
    overrides, members = cv.split_members(cv.CANDIDATES[name])
    assert members == 1
    # The recipe but for the input size and the network: no resampling, four blocks.
    recipe = cv.split_members(cv.CANDIDATES["L_64to28_15min"])[0]
    differ = ("preprocess", "model__channels")
    assert {k: v for k, v in overrides.items() if k not in differ} == {
        k: v for k, v in recipe.items() if k not in differ
    }
    mask = np.zeros((1, 64, 64, 64), dtype=np.uint8)
    mask[0, 20:45, 18:40, 25:47] = 255
    out = build_pipeline(overrides["preprocess"])(Image(mask, spacing=(1.0, 1.0, 1.0))).array
    assert out.shape == (1, 64, 64, 64)
    # The native voxels, scaled to [0, 1]: the resize to 64^3 is a no-op on them.
    np.testing.assert_array_equal(out, mask / np.float32(255))
    model = create_model("small_cnn", spatial_dims=3, channels=overrides["model__channels"])
    features = model.forward_features(torch.from_numpy(out[None].astype(np.float32)))
    assert tuple(features.shape) == (1, 64, 8, 8, 8)  # three halvings: 64 -> 8 voxels a side


def test_the_screen_round_never_adopts_and_round_9_decides_only_once_its_baseline_ran() -> None:
    rows = _rows(
        {
            "L_64to28_15min": [0.83, 0.84, 0.84],
            "Q_native64_8-16-32-64_15min": [0.85, 0.88, 0.87],
            "R_native64_stride2_15min": [0.88, 0.89, 0.88],
        }
    )
    report = cv.summarise(rows)
    # round 8 (the screen) prefers R, but only round 9 may adopt it, and its baseline has
    # not run: the recipe stays round 7's choice.
    assert [r["chosen"] for r in report["rounds"]][-1] == "R_native64_stride2_15min"
    assert report["rounds"][-1]["screen"] is True
    assert report["chosen"] == "Q_native64_8-16-32-64_15min"
    beaten = cv.summarise(rows + _rows({"Q_cl_15min": [0.89, 0.90, 0.89]}))
    assert beaten["chosen"] == "Q_cl_15min"
    beats = cv.summarise(rows + _rows({"Q_cl_15min": [0.86, 0.88, 0.88]}))
    assert beats["chosen"] == "R_native64_stride2_15min"
