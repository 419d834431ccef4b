"""``medlens evaluate RUN --data OTHER``: the run's whole decision rule on another labelled
set, the refer band and the out-of-distribution flag included, as ``medlens predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.ensemble import ensemble_runs
from medlens.commands.evaluate import evaluate_run
from medlens.inference.classify import predict_files

runner = CliRunner()
TRUST = ["decision", "refer", "refer_reason", "ood_score", "ood"]


@pytest.fixture(scope="module")
def inverted_npz(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PneumoniaMNIST with every image's contrast inverted (255 - x): a shifted site."""
    with np.load(pneumonia_npz) as archive:
        arrays = {
            key: (255 - archive[key]) if key.endswith("_images") else archive[key]
            for key in archive.files
        }
    path = tmp_path_factory.mktemp("inverted") / "inverted.npz"
    np.savez(path, **arrays)
    return path


def _evaluated(out: Path) -> tuple[dict, pd.DataFrame]:
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, pd.read_csv(out / "predictions.csv", keep_default_na=False)


def _check_counts(metrics: dict, table: pd.DataFrame) -> None:
    """metrics.json counts what predictions.csv marks."""
    trust = metrics["trust"]
    assert trust["ood"]["n"] == trust["refer"]["n"] == metrics["n"] == len(table)
    assert trust["ood"]["flagged"] == int(table["ood"].sum())
    assert trust["refer"]["referred"] == int(table["refer"].sum())
    assert (table.loc[table["ood"] == 1, "refer_reason"] == "out_of_distribution").all()
    assert (table.loc[table["refer"] == 1, "decision"] == "refer").all()
    kept = table[table["refer"] == 0]
    assert trust["refer"]["coverage"] == pytest.approx(len(kept) / len(table))


def test_shifted_data_is_flagged_and_counted(
    pneumonia_run: Path, inverted_npz: Path, tmp_path: Path
) -> None:
    plain, plain_table = _evaluated(evaluate_run(pneumonia_run, out=tmp_path / "plain"))
    command = ["evaluate", str(pneumonia_run), "--data", str(inverted_npz)]
    result = runner.invoke(app, [*command, "--out", str(tmp_path / "inverted")])
    assert result.exit_code == 0, result.output
    shifted, table = _evaluated(tmp_path / "inverted")
    for columns in (plain_table.columns, table.columns):
        assert {"pred", "pred_label", *TRUST} <= set(columns)
    _check_counts(plain, plain_table)
    _check_counts(shifted, table)
    # about 5% of in-distribution cases are flagged by design; far more of the inverted ones
    assert plain["trust"]["ood"]["flagged_share"] < 0.15
    assert shifted["trust"]["ood"]["flagged_share"] > 2 * plain["trust"]["ood"]["flagged_share"]
    referred, flagged = shifted["trust"]["refer"]["referred"], shifted["trust"]["ood"]["flagged"]
    said = " ".join(result.output.split())
    assert f"{referred} of {len(table)} cases referred to a human ({flagged} of them" in said


def test_evaluate_marks_cases_as_predict_does(
    pneumonia_run: Path, inverted_npz: Path, tmp_path: Path
) -> None:
    """The same images through ``medlens predict`` get the same columns and values."""
    out = evaluate_run(pneumonia_run, data=inverted_npz, out=tmp_path / "ev")
    _, table = _evaluated(out)
    images = tmp_path / "images"
    images.mkdir()
    with np.load(inverted_npz) as archive:
        for i in range(12):
            np.save(images / f"case_{i:02d}.npy", archive["test_images"][i])
    predict_files(pneumonia_run, [images], tmp_path / "p.csv", progress=False)
    predicted = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    first = table.iloc[:12].reset_index(drop=True)
    for column in ("pred", "pred_label", "decision", "refer", "refer_reason", "ood"):
        assert list(first[column]) == list(predicted[column]), column
    np.testing.assert_allclose(first["ood_score"], predicted["ood_score"], rtol=1e-4)
    np.testing.assert_allclose(first["prob_pneumonia"], predicted["prob_pneumonia"], atol=1e-6)


def test_an_ensemble_folder_is_evaluated_with_its_members_flags(
    pneumonia_run: Path, trust_runs: dict[str, Path], tmp_path: Path
) -> None:
    """One member flags every case (its threshold is below every score): the ensemble,
    which ORs its members' flags, refers them all."""
    ensemble = ensemble_runs(
        [pneumonia_run, trust_runs["out_of_distribution"]], "soft", tmp_path, n_bootstrap=0,
        documents=False,
    )  # fmt: skip
    metrics, table = _evaluated(evaluate_run(ensemble, out=tmp_path / "ev"))
    _check_counts(metrics, table)
    assert (table["ood"] == 1).all() and (table["ood_score"] >= 1).all()  # members flagging
    assert metrics["trust"]["refer"]["referred"] == len(table)
