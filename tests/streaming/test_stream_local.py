"""stream_predict with the local engine on real radiographs, one of them corrupt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlens.errors import ConfigError, InputError
from medlens.inference.classify import predict_files
from medlens.inference.loaded_run import load_run
from medlens.streaming import stream_predict


@pytest.fixture(scope="module")
def in_memory(pneumonia_run: Path, png_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The independent computation: ``medlens predict``'s in-memory path on the same files."""
    out = tmp_path_factory.mktemp("mem") / "pred.csv"
    predict_files(pneumonia_run, [png_folder], out, skip_bad=True)
    frame = pd.read_csv(out)
    frame["error"] = frame["error"].fillna("")
    return frame.set_index("case_id")


def test_a_bad_file_in_the_middle_is_a_row_and_the_others_are_predicted(
    pneumonia_run: Path,
    png_folder: Path,
    corrupt_png: Path,
    n_images: int,
    in_memory: pd.DataFrame,
    tmp_path: Path,
) -> None:
    out = tmp_path / "results.parquet"
    summary = stream_predict(
        pneumonia_run, png_folder, out, workers=2, batch_size=8, progress=False
    )
    rows = pd.read_parquet(out)
    names = load_run(pneumonia_run).class_names
    assert list(rows.columns) == [
        "case_id",
        *[f"prob_{n}" for n in names],
        "pred",
        "pred_label",
        "decision",  # issue 16: the refer band and the out-of-distribution flag
        "refer",
        "refer_reason",
        "ood_score",
        "ood",
        "seconds",
        "peak_rss_mib",
        "error",
    ]
    # every row says what it cost: seconds > 0 and the process's peak memory in MiB
    assert (rows["seconds"] > 0).all() and (rows["peak_rss_mib"] > 10).all()
    assert (summary.predicted, summary.errors, summary.already_done) == (n_images, 1, 0)
    # Rows keep the folder's name order, the corrupt file in its place among them.
    assert [Path(c).name for c in rows.case_id] == sorted(
        [f"chest_{i:03d}.png" for i in range(n_images)] + [corrupt_png.name]
    )
    bad = rows[rows.case_id.str.endswith(corrupt_png.name)].iloc[0]
    assert bad.error == in_memory.loc[bad.case_id, "error"] != ""
    assert np.isnan(bad[f"prob_{names[0]}"]) and pd.isna(bad.pred)
    good = rows[rows.error.isna()].set_index("case_id")
    assert len(good) == n_images
    expected = in_memory.loc[good.index]
    for name in names:
        np.testing.assert_allclose(good[f"prob_{name}"], expected[f"prob_{name}"], atol=1e-6)
    assert (good.pred.astype(int) == expected.pred).all()
    assert (good.pred_label == expected.pred_label).all()
    for column in ("decision", "refer", "ood"):
        assert (good[column].astype(str) == expected[column].astype(str)).all(), column
    np.testing.assert_allclose(good["ood_score"], expected["ood_score"], rtol=1e-4)
    assert not Path(f"{out}.partial").exists()


def test_csv_and_in_process_decoding_give_the_same_rows(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    parquet = tmp_path / "a.parquet"
    csv = tmp_path / "b.csv"
    stream_predict(pneumonia_run, png_folder, parquet, workers=1, batch_size=16, progress=False)
    stream_predict(pneumonia_run, [png_folder], csv, workers=0, batch_size=5, progress=False)
    a = pd.read_parquet(parquet)
    b = pd.read_csv(csv)
    assert list(a.case_id) == list(b.case_id)
    prob = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(a[prob].to_numpy(), b[prob].to_numpy(), atol=1e-6)
    assert (a.error.fillna("") == b.error.fillna("")).all()


def test_bad_arguments_are_named(pneumonia_run: Path, png_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        stream_predict(pneumonia_run, png_folder, tmp_path / "r.json", progress=False)
    assert info.value.key == "out"
    with pytest.raises(ConfigError) as info:
        stream_predict(
            pneumonia_run, png_folder, tmp_path / "r.csv", engine="spark", progress=False
        )  # type: ignore[arg-type]
    assert info.value.key == "engine"
    with pytest.raises(InputError, match="not found"):
        stream_predict(pneumonia_run, tmp_path / "absent", tmp_path / "r.csv", progress=False)
    assert not (tmp_path / "r.csv.partial").exists()


def test_cli_predict_streams_to_parquet_and_records_the_bad_file(
    pneumonia_run: Path, png_folder: Path, corrupt_png: Path, n_images: int, tmp_path: Path
) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    from medlens.cli import app

    out = tmp_path / "results.parquet"
    result = CliRunner().invoke(
        app, ["predict", str(pneumonia_run), str(png_folder), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert len(table) == n_images + 1
    assert table["error"].fillna("").astype(bool).sum() == 1


@pytest.mark.parametrize(("cores", "expected"), [(None, 1), (1, 1), (2, 2), (6, 6), (64, 8)])
def test_the_default_worker_count_is_one_per_core_up_to_eight(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, expected: int
) -> None:
    import os

    from medlens.streaming.stream import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert default_workers() == expected
