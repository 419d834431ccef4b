"""A run's calibrator, refer band and out-of-distribution score, replayed by ``medlens
predict``: the same numbers as the run's own predictions.csv, and every referral marked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlens.errors import ConfigError
from medlens.inference.classify import predict_files
from medlens.inference.loaded_run import load_run
from medlens.trust.calibrators import TemperatureScaling


@pytest.fixture
def png_folder(pneumonia_test_images: np.ndarray, png_bytes, tmp_path: Path) -> Path:
    """Eight real test radiographs as PNG files."""
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(pneumonia_test_images):
        (folder / f"chest_{i}.png").write_bytes(png_bytes(image))
    return folder


@pytest.fixture(scope="module")
def replayed(pneumonia_run: Path, pneumonia_npz: Path, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("replay") / "pred.csv"
    predict_files(pneumonia_run, [pneumonia_npz], out, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    table["case_id"] = table["case_id"].str.split("#").str[-1]
    return table.set_index("case_id")


def test_predict_replays_the_runs_calibration_band_and_ood_flags(
    pneumonia_run: Path, replayed: pd.DataFrame
) -> None:
    run = load_run(pneumonia_run)
    assert isinstance(run.trust.calibrator, TemperatureScaling)
    assert run.trust.ood is not None and run.trust.band.rule == "coverage"
    recorded = pd.read_csv(pneumonia_run / "predictions.csv", keep_default_na=False)
    recorded = recorded[recorded["split"] == "test"].set_index("case_id")
    ours = replayed.loc[recorded.index]
    for column in ("prob_normal", "prob_pneumonia", "ood_score"):
        np.testing.assert_allclose(ours[column], recorded[column], rtol=1e-4, atol=1e-5)
    for column in ("pred", "decision", "refer", "refer_reason", "ood"):
        assert (ours[column].astype(str) == recorded[column].astype(str)).mean() > 0.995, column


@pytest.mark.parametrize("reason", ["uncertain", "out_of_distribution"])
def test_a_referral_is_marked_in_the_csv_and_counted(
    reason: str, trust_runs: dict[str, Path], pneumonia_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    written = predict_files(trust_runs[reason], [pneumonia_npz], out, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    assert written.referred == written.predicted == len(table)
    assert set(table["decision"]) == {"refer"}
    flagged = table["refer_reason"] == "out_of_distribution"
    assert written.out_of_distribution == flagged.sum() == table["ood"].sum()
    if reason == "out_of_distribution":
        assert flagged.all()
    else:  # the band takes every case the score did not flag
        assert set(table.loc[~flagged, "refer_reason"]) == {"uncertain"} and (~flagged).any()
    assert set(table["pred_label"]) <= {"normal", "pneumonia"}  # the model's class stays known


def test_tta_adds_entropy_and_mutual_information(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    predict_files(pneumonia_run, [png_folder], out, uncertainty="tta")
    good = pd.read_csv(out)
    assert len(good) == 8
    assert set(good["uncertainty_method"]) == {"tta"}
    assert (good["entropy"] >= 0).all() and (good["entropy"] <= np.log(2) + 1e-9).all()
    assert (good["mutual_information"] >= 0).all() and good["mutual_information"].max() > 0
    assert (good["mutual_information"] <= good["entropy"] + 1e-9).all()


@pytest.mark.parametrize(
    ("method", "reason"),
    [("mc_dropout", "mc_dropout needs a network with dropout"), ("ensemble", "ensemble of one")],
)
def test_an_uncertainty_the_run_cannot_give_is_one_clear_error(
    method: str, reason: str, pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=reason):
        predict_files(pneumonia_run, [png_folder], tmp_path / "x.csv", uncertainty=method)
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "medlens.cli", "predict", str(pneumonia_run), str(png_folder),
         "--out", str(out), "--uncertainty", method],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--uncertainty" in lines[0] and reason in lines[0]
    assert not out.exists()


def test_a_three_class_run_refers_each_decided_class_below_its_own_cut(
    wbc_types_run: Path, wbc_types_images: Path, tmp_path: Path
) -> None:
    """Trained on real cells of three types, the run records one cut per class, chosen on
    validation; its predictions.csv refers exactly the cases below their decided class's cut
    (or flagged out of distribution), half of each decided class on validation; and
    ``medlens predict`` replays the same referrals."""
    run = load_run(wbc_types_run)
    band = run.trust.band
    assert band.low is None and band.high is None and band.min_confidence is None
    cuts = np.asarray(band.class_min_confidence)
    assert cuts.shape == (3,) and len(set(cuts.tolist())) == 3  # a cut of each class's own
    table = pd.read_csv(wbc_types_run / "predictions.csv", keep_default_na=False)
    probs = table[[f"prob_{name}" for name in run.class_names]].to_numpy()
    decided = probs.argmax(axis=1)
    below = probs[np.arange(len(probs)), decided] < cuts[decided]
    ood = table["ood"].to_numpy().astype(bool)
    assert (table["refer"].to_numpy().astype(bool) == (below | ood)).all()
    assert ((table["refer_reason"] == "uncertain").to_numpy() == (below & ~ood)).all()
    assert below.any() and not below.all()
    val = (table["split"] == "val").to_numpy()
    assert len(np.unique(decided[val])) >= 2
    for k in np.unique(decided[val]):  # coverage 0.5: half of each, rounded down
        assert below[val & (decided == k)].sum() == (val & (decided == k)).sum() // 2

    out = tmp_path / "pred.csv"
    test_rows = table[table["split"] == "test"]
    files = [wbc_types_images / case_id for case_id in test_rows["case_id"]]
    written = predict_files(wbc_types_run, files, out, progress=False)
    replayed = pd.read_csv(out, keep_default_na=False)
    assert written.referred == int(test_rows["refer"].sum())
    assert replayed["refer"].tolist() == test_rows["refer"].tolist()
    assert replayed["decision"].tolist() == test_rows["decision"].tolist()
