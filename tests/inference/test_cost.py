"""Per-case cost: seconds and peak memory beside every prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlens.inference.classify import predict_files
from medlens.inference.cost import CaseCost
from medlens.inference.segment import segment_files


def test_the_meter_sees_the_time_and_the_memory_of_its_case() -> None:
    with CaseCost() as small:
        np.ones(1_000, dtype=np.uint8).sum()
    with CaseCost() as large:
        block = np.ones(256 * 2**20, dtype=np.uint8)  # 256 MiB, touched
        block.sum()
    del block
    assert small.seconds >= 0 and large.seconds > small.seconds
    if large.peak_rss_method == "during the case":  # Linux lets the peak be reset
        assert large.peak_rss_mib - small.peak_rss_mib > 200
    assert set(large.columns()) == {"seconds", "peak_rss_mib"}


def test_classification_and_segmentation_outputs_carry_the_cost(
    pneumonia_run: Path, drive_run: Path, drive_dir: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    predict_files(pneumonia_run, [pneumonia_npz], out, progress=False)
    table = pd.read_csv(out)
    assert (table["seconds"] > 0).all() and (table["peak_rss_mib"] > 10).all()
    fundus = sorted((drive_dir / "test" / "images").iterdir())[:1]
    segment_files(drive_run, fundus, tmp_path / "masks", progress=False)
    masks = pd.read_csv(tmp_path / "masks" / "segmentations.csv")
    assert (masks["seconds"] > 0).all() and (masks["peak_rss_mib"] > 10).all()
