"""``medlens predict`` with a segmentation run: masks as PNG, NIfTI and DICOM SEG."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from medlens.cli import app
from medlens.data.dicom_seg import read_dicom_seg
from medlens.data.dicom_series import read_dicom_series
from medlens.data.masks import read_mask
from medlens.errors import InputError
from medlens.inference.segment import segment_files

torch.set_num_threads(1)


def test_a_dicom_series_gives_a_dicom_seg_that_references_it(
    ct_run: Path, ct_dir: Path, tmp_path: Path
):
    n_ok, n_bad = segment_files(ct_run, [ct_dir], tmp_path / "out")
    assert (n_ok, n_bad) == (1, 0)
    seg_path = tmp_path / "out" / "ct.dcm"
    seg = hd.seg.segread(seg_path)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    ct_series = pydicom.dcmread(next(ct_dir.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_series
    assert seg.SegmentSequence[0].SegmentLabel == "liver"
    mask = read_dicom_seg(seg_path, series=read_dicom_series(ct_dir))
    assert mask.array.shape[1:] == (3, 512, 512)
    table = pd.read_csv(tmp_path / "out" / "segmentations.csv")
    assert table.loc[0, "voxels_liver"] == int(mask.array[0].sum())
    assert table.loc[0, "size_liver_mm3"] == pytest.approx(
        table.loc[0, "voxels_liver"] * 0.810547 * 0.810547 * 1.0, rel=1e-3
    )


def test_a_volume_can_be_written_as_nifti_on_the_series_grid(
    ct_run: Path, ct_dir: Path, tmp_path: Path
):
    segment_files(ct_run, [ct_dir], tmp_path, mask_format="nifti")
    mask = read_mask(tmp_path / "ct.nii.gz")
    assert mask.spatial_shape == (3, 512, 512)
    np.testing.assert_allclose(mask.spacing, read_dicom_series(ct_dir).spacing, rtol=1e-5)


def test_png_masks_for_2d_images_keep_the_image_size(
    drive_run: Path, shared_data: Path, tmp_path: Path
):
    images = shared_data / "drive_retina_vessels" / "test" / "images"
    inputs = [images / "02_test.tif", images / "03_test.tif"]
    assert segment_files(drive_run, inputs, tmp_path) == (2, 0)
    for name in ("02_test.png", "03_test.png"):
        mask = read_mask(tmp_path / name)
        assert mask.spatial_shape == (584, 565)
        assert set(np.unique(mask.array)) <= {0, 1}


def test_a_bad_file_is_recorded_with_skip_bad_and_stops_the_run_without(
    drive_run: Path, shared_data: Path, tmp_path: Path
):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = shared_data / "drive_retina_vessels" / "test" / "images" / "04_test.tif"
    with pytest.raises(InputError, match="broken.png"):
        segment_files(drive_run, [bad, good], tmp_path / "strict")
    assert segment_files(drive_run, [bad, good], tmp_path / "lenient", skip_bad=True) == (1, 1)
    table = pd.read_csv(tmp_path / "lenient" / "segmentations.csv")
    assert table["error"].fillna("").astype(bool).sum() == 1


def test_a_dicom_seg_needs_a_series(drive_run: Path, shared_data: Path, tmp_path: Path):
    image = shared_data / "drive_retina_vessels" / "test" / "images" / "05_test.tif"
    with pytest.raises(InputError, match="DICOM series"):
        segment_files(drive_run, [image], tmp_path, mask_format="dicom-seg")


def test_cli_predict_writes_masks_for_a_segmentation_run(
    drive_run: Path, shared_data: Path, tmp_path: Path
):
    image = shared_data / "drive_retina_vessels" / "test" / "images" / "06_test.tif"
    result = CliRunner().invoke(
        app, ["predict", str(drive_run), str(image), "--out", str(tmp_path / "masks")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "masks" / "06_test.png").is_file()
    assert "1 masks written" in result.output
