"""Per-voxel uncertainty maps of a segmentation run and their per-case summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest

from medlens.errors import ConfigError
from medlens.inference.segment import segment_files


def test_tta_writes_entropy_and_mutual_information_maps(
    drive_run: Path, drive_dir: Path, tmp_path: Path
) -> None:
    fundus = sorted((drive_dir / "test" / "images").iterdir())[:1]
    segment_files(drive_run, fundus, tmp_path / "masks", progress=False, uncertainty="tta")
    row = pd.read_csv(tmp_path / "masks" / "segmentations.csv").iloc[0]
    assert row["uncertainty_method"] == "tta"
    assert 0 <= row["expected_dice"] <= 1 and row["uncertainty"] == pytest.approx(
        1 - row["expected_dice"]
    )
    assert 0 <= row["mean_mutual_information"] <= row["mean_entropy"] <= np.log(2)
    with PIL.Image.open(row["entropy_map"]) as entropy_map, PIL.Image.open(row["mask"]) as mask:
        assert entropy_map.size == mask.size  # on the image's own grid
        assert np.asarray(entropy_map).max() > 0
    assert Path(row["mutual_information_map"]).is_file()


def test_a_segmenter_without_dropout_or_an_ensemble_is_refused(
    drive_run: Path, drive_dir: Path, tmp_path: Path
) -> None:
    fundus = sorted((drive_dir / "test" / "images").iterdir())[:1]
    for method, reason in (("mc_dropout", "needs a network with dropout"), ("ensemble", "2+")):
        with pytest.raises(ConfigError, match=reason):
            segment_files(drive_run, fundus, tmp_path / "m", uncertainty=method)
