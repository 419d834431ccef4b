"""A killed streaming run leaves readable rows, and the re-run finishes it: every case once,
the same numbers as a run that was never interrupted."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlens.errors import InputError
from medlens.streaming import stream_predict


class Killed(Exception):
    """Stands for the process being killed between two batches."""


def _kill_after(k: int):
    def on_batch(batches: int, rows: int) -> None:
        if batches == k:
            raise Killed

    return on_batch


def _read(path: Path, parquet: bool | None = None) -> pd.DataFrame:
    parquet = path.suffix == ".parquet" if parquet is None else parquet
    frame = pd.read_parquet(path) if parquet else pd.read_csv(path)
    return frame.set_index("case_id").sort_index()


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.index) == list(b.index)
    prob = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(a[prob].to_numpy(), b[prob].to_numpy(), atol=1e-6)
    assert (a.pred_label.fillna("") == b.pred_label.fillna("")).all()
    assert (a.error.fillna("") == b.error.fillna("")).all()


@pytest.fixture(scope="module")
def uninterrupted(pneumonia_run: Path, png_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("whole") / "whole.parquet"
    stream_predict(pneumonia_run, png_folder, out, workers=0, batch_size=6, progress=False)
    return _read(out)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_killed_run_resumes_and_every_case_is_predicted_once(
    pneumonia_run: Path, png_folder: Path, uninterrupted: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"results{suffix}"
    with pytest.raises(Killed):
        stream_predict(
            pneumonia_run,
            png_folder,
            out,
            workers=1,
            batch_size=6,
            progress=False,
            on_batch=_kill_after(3),
        )
    partial = Path(f"{out}.partial")
    assert not out.exists()
    written = _read(partial, suffix == ".parquet")  # readable as it is after the kill
    assert len(written) == 18
    _same_rows(written, uninterrupted.loc[written.index])

    summary = stream_predict(
        pneumonia_run, png_folder, out, workers=1, batch_size=6, progress=False
    )
    assert summary.already_done == 18
    assert summary.predicted + summary.errors == len(uninterrupted) - 18
    _same_rows(_read(out), uninterrupted)
    assert not partial.exists()


def test_a_csv_line_cut_by_the_kill_is_dropped_and_redone(
    pneumonia_run: Path, png_folder: Path, uninterrupted: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "results.csv"
    with pytest.raises(Killed):
        stream_predict(
            pneumonia_run,
            png_folder,
            out,
            workers=0,
            batch_size=6,
            progress=False,
            on_batch=_kill_after(1),
        )
    partial = Path(f"{out}.partial")
    lines = partial.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:-1]) + lines[-1][:20])  # the last row half written
    summary = stream_predict(
        pneumonia_run, png_folder, out, workers=0, batch_size=6, progress=False
    )
    assert summary.already_done == 5
    _same_rows(_read(out), uninterrupted)


def test_new_files_are_added_to_a_finished_output(
    pneumonia_run: Path, png_folder: Path, uninterrupted: pd.DataFrame, tmp_path: Path
) -> None:
    folder = tmp_path / "pngs"
    folder.mkdir()
    names = sorted(p.name for p in png_folder.glob("*.png"))
    for name in names[:10]:
        shutil.copy(png_folder / name, folder / name)
    out = tmp_path / "results.parquet"
    stream_predict(pneumonia_run, folder, out, batch_size=4, progress=False)
    for name in names[10:]:
        shutil.copy(png_folder / name, folder / name)
    summary = stream_predict(pneumonia_run, folder, out, batch_size=4, progress=False)
    assert (summary.already_done, summary.predicted + summary.errors) == (10, len(names) - 10)
    rows = _read(out)
    assert list(rows.index) == sorted(str(folder / n) for n in names)
    expected = uninterrupted.set_index(
        uninterrupted.index.str.replace(str(png_folder), str(folder))
    )
    _same_rows(rows, expected.loc[rows.index])

    nothing_new = stream_predict(pneumonia_run, folder, out, batch_size=4, progress=False)
    assert (nothing_new.already_done, nothing_new.predicted + nothing_new.errors) == (len(names), 0)
    _same_rows(_read(out), rows)

    again = stream_predict(pneumonia_run, folder, out, batch_size=4, resume=False, progress=False)
    assert (again.already_done, again.predicted + again.errors) == (0, len(names))


def test_a_partial_output_of_another_run_is_refused(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.csv"
    Path(f"{out}.partial").write_text("case_id,prob_benign,prob_malignant,pred,pred_label,error\n")
    with pytest.raises(InputError, match="other columns"):
        stream_predict(pneumonia_run, png_folder, out, progress=False)
