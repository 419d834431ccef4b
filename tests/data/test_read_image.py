"""``read_image`` dispatch: content decides, the extension only breaks ties."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.data.readers import image_format, read_image
from medlens.errors import InputError


def test_png_content_wins_over_a_wrong_suffix(tmp_path: Path) -> None:
    PIL.Image.fromarray(np.full((4, 5), 7, dtype=np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "x.dat")
    assert image_format(tmp_path / "x.dat") == "raster"
    assert read_image(tmp_path / "x.dat").array.max() == 7


def test_dicom_without_suffix_is_found_by_its_marker(ct_dir: Path, tmp_path: Path) -> None:
    shutil.copy(ct_dir / "01.dcm", tmp_path / "IM0001")
    assert image_format(tmp_path / "IM0001") == "dicom"
    assert read_image(tmp_path / "IM0001").array.shape == (1, 512, 512)


def test_folder_is_read_as_a_dicom_series(ct_dir: Path) -> None:
    assert image_format(ct_dir) == "dicom_series"
    assert read_image(ct_dir).array.shape == (1, 3, 512, 512)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "absent.png")


def test_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="notes.txt: is not a supported image"):
        read_image(tmp_path / "notes.txt")


def test_npz_points_to_the_medmnist_format(tmp_path: Path) -> None:
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="medmnist"):
        read_image(tmp_path / "arrays.npz")
