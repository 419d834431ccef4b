"""A referral (refer band or out-of-distribution flag) reaches the streamed rows, the
summary counts it, and ``medlens predict`` prints the counts; an ensemble run folder
streams as it predicts in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.ensemble import ensemble_runs
from medlens.inference.classify import predict_files
from medlens.streaming import stream_predict

runner = CliRunner()


@pytest.mark.parametrize("reason", ["uncertain", "out_of_distribution"])
def test_streamed_rows_mark_every_referral(
    reason: str, trust_runs: dict[str, Path], png_folder: Path, n_images: int, tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    summary = stream_predict(
        trust_runs[reason], png_folder, out, workers=1, batch_size=8, progress=False
    )
    rows = pd.read_parquet(out)
    good = rows[rows["error"].isna()]
    assert len(good) == n_images
    assert set(good["decision"]) == {"refer"} and (good["refer"] == 1).all()
    flagged = good["refer_reason"] == "out_of_distribution"
    assert (flagged == (good["ood"] == 1)).all()
    if reason == "out_of_distribution":
        assert flagged.all()
    else:
        assert set(good.loc[~flagged, "refer_reason"]) == {"uncertain"}
    bad = rows[rows["error"].notna()]
    assert bad["decision"].isna().all() and bad["refer"].isna().all()
    assert summary.referred == n_images
    assert summary.out_of_distribution == int(flagged.sum())


def test_summary_and_predict_line_count_the_referred_rows(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    result = runner.invoke(
        app,
        ["predict", str(pneumonia_run), str(png_folder), "--engine", "local", "--workers", "1",
         "--batch-size", "8", "--out", str(out), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out)
    good = rows[rows["error"].isna()]
    referred, flagged = int(good["refer"].sum()), int(good["ood"].sum())
    assert 0 < referred < len(good)  # the band refers some cases, not all
    said = " ".join(result.output.split())
    assert (
        f"{len(good)} predictions ({referred} referred to a human, {flagged} of them out of "
        "distribution), 1 unreadable"
    ) in said


@pytest.fixture(scope="module")
def ensemble_run(
    pneumonia_run: Path, trust_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An ensemble of the run and a copy of it whose out-of-distribution threshold is below
    every score: the ensemble, which ORs its members' flags, flags every case."""
    return ensemble_runs(
        [pneumonia_run, trust_runs["out_of_distribution"]],
        "soft",
        tmp_path_factory.mktemp("ensembles"),
        n_bootstrap=0,
        documents=False,
    )


def test_an_ensemble_folder_streams_as_it_predicts_in_memory(
    ensemble_run: Path, png_folder: Path, n_images: int, tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    summary = stream_predict(ensemble_run, png_folder, out, workers=1, batch_size=8,
                             progress=False)  # fmt: skip
    predict_files(ensemble_run, [png_folder], tmp_path / "mem.csv", skip_bad=True, progress=False)
    expected = pd.read_csv(tmp_path / "mem.csv", keep_default_na=False)
    expected = expected[expected["error"] == ""].set_index("case_id")
    rows = pd.read_parquet(out)
    good = rows[rows["error"].isna()].set_index("case_id")
    assert (summary.predicted, summary.errors) == (n_images, 1) and len(good) == n_images
    expected = expected.loc[good.index]
    np.testing.assert_allclose(
        good["prob_pneumonia"], expected["prob_pneumonia"].astype(float), atol=1e-6
    )
    for column in ("pred", "pred_label", "decision", "refer", "refer_reason", "ood"):
        assert list(good[column].astype(str)) == list(expected[column].astype(str)), column
    np.testing.assert_allclose(good["ood_score"], expected["ood_score"].astype(float))
    assert (good["ood"] == 1).all() and (good["ood_score"] >= 1).all()
    assert summary.referred == summary.out_of_distribution == n_images
