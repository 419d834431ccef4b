"""The unit a segmentation run records for its distances: mm only when every scored image's
spacing came from its file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image as PILImage

from medlens.data.image import Image
from medlens.data.readers import read_image
from medlens.train.segmentation.run import distance_unit, spacing_from_file


def _nifti(path: Path) -> Image:
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.diag([0.7, 0.7, 2.5, 1])), path)
    return read_image(path)


def _png(path: Path) -> Image:
    PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return read_image(path)


def test_nifti_spacing_is_from_the_file_and_png_spacing_is_assumed(tmp_path: Path) -> None:
    nifti, png = _nifti(tmp_path / "a.nii.gz"), _png(tmp_path / "b.png")
    assert spacing_from_file(nifti) and np.allclose(nifti.spacing, (0.7, 0.7, 2.5))
    assert png.meta["spacing_source"] == "assumed" and not spacing_from_file(png)
    npy = Image(np.zeros((1, 4, 4), np.float32), (1.0, 1.0), meta={"format": "npy"})
    assert not spacing_from_file(npy)
    dicom = Image(np.zeros((1, 4, 4), np.float32), (1.0, 1.0), meta={"format": "dicom"})
    assert spacing_from_file(dicom)
    dicom.meta["spacing_known"] = False  # no PixelSpacing: 1.0 assumed
    assert not spacing_from_file(dicom)


def test_mm_only_when_every_scored_image_has_its_spacing_from_its_file(tmp_path: Path) -> None:
    nifti, png = _nifti(tmp_path / "a.nii.gz"), _png(tmp_path / "b.png")
    assert distance_unit([nifti, nifti]) == "mm"
    assert distance_unit([png]) == "px"
    assert distance_unit([nifti, png]) == "px"
