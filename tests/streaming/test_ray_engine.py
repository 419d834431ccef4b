"""The Ray engine gives the local engine's rows (one local Ray instance for the module)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from medlens.streaming import stream_predict


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    yield
    ray.shutdown()


def test_ray_finishes_a_local_run_with_the_local_engines_rows(
    ray_instance: None, pneumonia_run: Path, png_folder: Path, corrupt_png: Path, tmp_path: Path
) -> None:
    # One Ray execution (actors start slowly): the local engine predicts the first 20
    # files and is stopped; Ray, with two actors, predicts the other 21, the corrupt file
    # among them; the whole must equal an uninterrupted local run.
    local = tmp_path / "local.parquet"
    stream_predict(pneumonia_run, png_folder, local, workers=0, batch_size=8, progress=False)
    mixed = tmp_path / "mixed.parquet"

    def stop(batches: int, rows: int) -> None:
        if batches == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_predict(
            pneumonia_run, png_folder, mixed, batch_size=10, progress=False, on_batch=stop
        )
    summary = stream_predict(
        pneumonia_run, png_folder, mixed, engine="ray", workers=2, batch_size=4, progress=False
    )
    assert ray.is_initialized()  # an instance the caller started is left running
    assert (summary.already_done, summary.predicted, summary.errors) == (20, 20, 1)

    a, b = pd.read_parquet(local), pd.read_parquet(mixed)
    assert list(a.case_id) == list(b.case_id)  # every case once, in the folder's order
    bad = b.case_id == str(corrupt_png)
    assert b.error.notna().sum() == 1 and b.loc[bad, "error"].item() == a.loc[bad, "error"].item()
    assert (a.error.isna() == b.error.isna()).all()
    prob = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(a[prob].to_numpy(), b[prob].to_numpy(), atol=1e-6, equal_nan=True)
    assert (a.pred.fillna(-1) == b.pred.fillna(-1)).all()
    assert (a.pred_label.fillna("") == b.pred_label.fillna("")).all()
