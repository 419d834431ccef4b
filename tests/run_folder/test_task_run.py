"""The shared run-folder reader: a bad CSV table is one error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlens.errors import InputError
from medlens.run_folder.task_run import read_csv_table


def test_text_columns_stay_text_and_a_bad_table_names_its_file(tmp_path: Path) -> None:
    good = tmp_path / "counts.csv"
    good.write_text("image_id,split,n\n007,test,3\n")
    table = read_csv_table(good, ("image_id", "split"))
    assert table["image_id"].tolist() == ["007"] and table["n"].tolist() == [3]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.csv.*not a readable CSV table"):
        read_csv_table(empty, ("image_id",))
