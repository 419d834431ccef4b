"""A referral (refer band or out-of-distribution flag) reaches the streamed rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medlens.streaming import stream_predict


@pytest.mark.parametrize("reason", ["uncertain", "out_of_distribution"])
def test_streamed_rows_mark_every_referral(
    reason: str, trust_runs: dict[str, Path], png_folder: Path, n_images: int, tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    stream_predict(trust_runs[reason], png_folder, out, workers=1, batch_size=8, progress=False)
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
