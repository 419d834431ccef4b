"""``.npy`` and NIfTI reading: layout, geometry (spacing, affine) and bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlens.data.readers import read_image
from medlens.errors import InputError


def _oblique_affine() -> np.ndarray:
    angle = np.deg2rad(20)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 0.9, 2.5])
    affine[:3, 3] = [-90.0, 12.5, 40.0]
    return affine


def test_nifti_volume_keeps_axes_spacing_and_affine(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = rng.normal(size=(7, 8, 9)).astype(np.float32)
    affine = _oblique_affine()
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "vol.nii.gz")
    image = read_image(tmp_path / "vol.nii.gz")
    assert image.array.shape == (1, 7, 8, 9)
    np.testing.assert_array_equal(image.array[0], data)
    assert image.spacing == pytest.approx((0.8, 0.9, 2.5), abs=1e-5)
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)


def test_nifti_scaling_is_applied(tmp_path: Path) -> None:
    stored = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(stored, np.eye(4))
    img.header.set_slope_inter(2.0, -5.0)
    nib.save(img, tmp_path / "scaled.nii")
    image = read_image(tmp_path / "scaled.nii")
    np.testing.assert_allclose(image.array[0], stored * 2.0 - 5.0)


def test_nifti_4d_fourth_axis_becomes_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(size=(5, 6, 7, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 3.0, 1.0])), tmp_path / "multi.nii.gz")
    image = read_image(tmp_path / "multi.nii.gz")
    assert image.array.shape == (3, 5, 6, 7)
    np.testing.assert_array_equal(image.array[2], data[..., 2])
    assert image.spacing == pytest.approx((1.5, 1.5, 3.0))


def test_nifti_with_nan_voxels_is_refused(tmp_path: Path) -> None:
    data = np.zeros((4, 4, 4), dtype=np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(InputError, match="nan.nii.gz.*1 of 64"):
        read_image(tmp_path / "nan.nii.gz")


def test_truncated_nifti_names_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(size=(16, 16, 16)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "full.nii.gz")
    raw = gzip.decompress((tmp_path / "full.nii.gz").read_bytes())
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 3]))
    with pytest.raises(InputError) as info:
        read_image(tmp_path / "cut.nii.gz")
    assert info.value.path == str(tmp_path / "cut.nii.gz")


def test_npy_2d_is_one_grey_image(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 1000, (5, 6)).astype(np.int32)
    np.save(tmp_path / "a.npy", pixels)
    image = read_image(tmp_path / "a.npy")
    assert image.array.shape == (1, 5, 6)
    np.testing.assert_array_equal(image.array[0], pixels)


def test_npy_channel_first_volume(tmp_path: Path, rng: np.random.Generator) -> None:
    volume = rng.normal(size=(1, 4, 5, 6))
    np.save(tmp_path / "v.npy", volume)
    image = read_image(tmp_path / "v.npy")
    assert image.array.shape == (1, 4, 5, 6) and image.spatial_dims == 3
    np.testing.assert_allclose(image.array, volume, rtol=1e-6)


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((2, 2, 2, 2, 2)), "shape"),
        (np.array([1.0, np.inf, 2.0, 3.0]).reshape(2, 2), "NaN or infinite"),
        (np.array(["a", "b", "c", "d"]).reshape(2, 2), "not numbers"),
    ],
)
def test_npy_bad_arrays(tmp_path: Path, array: np.ndarray, reason: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InputError, match=reason):
        read_image(tmp_path / "bad.npy")


def test_npy_pickled_objects_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy"):
        read_image(tmp_path / "obj.npy")
