"""Reading and writing masks: PNG/GIF, NIfTI, .npy and DICOM SEG, with their geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pytest
from nilearn.datasets import load_mni152_gm_mask, load_mni152_template, load_mni152_wm_mask

from medlens.data.dicom_series import read_dicom_series
from medlens.data.image import Image
from medlens.data.masks import LPS_TO_RAS, read_mask, write_mask
from medlens.data.nifti import read_nifti
from medlens.errors import InputError


@pytest.fixture(scope="module")
def mni_labels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """nilearn's MNI152 template (2 mm, shipped with nilearn) and a GM=1 / WM=2 label map."""
    folder = tmp_path_factory.mktemp("mni")
    template = load_mni152_template(resolution=2)
    gm = np.asarray(load_mni152_gm_mask(resolution=2).dataobj) > 0
    wm = np.asarray(load_mni152_wm_mask(resolution=2).dataobj) > 0
    labels = np.where(wm, 2, np.where(gm, 1, 0)).astype(np.uint8)
    path = folder / "template.nii.gz"
    nib.save(template, path)
    return path, labels


def test_drive_mask_with_value_251_is_binarised(shared_data: Path) -> None:
    path = shared_data / "drive_retina_vessels" / "test" / "1st_manual" / "01_manual1.gif"
    mask = read_mask(path)
    stored = np.asarray(PIL.Image.open(path))
    assert set(np.unique(stored)) == {0, 251}
    assert mask.array.shape == (1, 584, 565) and mask.array.dtype == np.uint8
    np.testing.assert_array_equal(mask.array[0], stored > 127)


def test_png_round_trip_of_a_binary_mask_is_viewable(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    binary = (rng.random((1, 40, 30)) > 0.7).astype(np.uint8)
    path = write_mask(Image(binary, (1.0, 1.0)), tmp_path / "m.png")
    stored = np.asarray(PIL.Image.open(path))
    assert set(np.unique(stored)) == {0, 255}  # visible in any viewer
    np.testing.assert_array_equal(read_mask(path).array, binary)


def test_png_round_trip_of_a_label_map(tmp_path: Path, rng: np.random.Generator) -> None:
    labels = rng.integers(0, 4, size=(1, 20, 25)).astype(np.uint8)
    path = write_mask(Image(labels, (1.0, 1.0)), tmp_path / "labels.png")
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(path)), labels[0])
    np.testing.assert_array_equal(read_mask(path).array, labels)


def test_colour_palette_png_gives_palette_indices(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    img = PIL.Image.fromarray(indices, mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
    img.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "voc.png").array[0], indices)


def test_ambiguous_grey_levels_are_refused(tmp_path: Path) -> None:
    grey = np.array([[0, 100, 200], [200, 100, 0]], dtype=np.uint8)
    PIL.Image.fromarray(grey).save(tmp_path / "grey.png")
    with pytest.raises(InputError, match="3 grey levels"):
        read_mask(tmp_path / "grey.png")


def test_nifti_round_trip_keeps_the_affine(
    mni_labels: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    template_path, labels = mni_labels
    reference = read_nifti(template_path)
    mask = Image(labels[None], reference.spacing)  # no affine of its own
    out = write_mask(mask, tmp_path / "labels.nii.gz", reference=reference)

    stored = nib.load(out)
    np.testing.assert_allclose(stored.affine, nib.load(template_path).affine)
    np.testing.assert_array_equal(np.asarray(stored.dataobj), labels)
    assert stored.get_data_dtype() == np.uint8
    back = read_mask(out, reference=reference)
    np.testing.assert_array_equal(back.array[0], labels)
    np.testing.assert_allclose(back.affine, reference.affine)
    assert back.spacing == (2.0, 2.0, 2.0)


def test_dicom_mask_written_as_nifti_in_ras(ct_dir: Path, tmp_path: Path) -> None:
    ct = read_dicom_series(ct_dir)
    liver = read_mask(ct_dir.parent / "seg" / "liver.dcm", reference=ct)
    out = write_mask(liver, tmp_path / "liver.nii")

    np.testing.assert_allclose(nib.load(out).affine, LPS_TO_RAS @ ct.affine, atol=1e-4)
    back = read_mask(out, reference=ct)  # RAS file against an LPS series: same grid
    np.testing.assert_array_equal(back.array, liver.array)
    assert back.array.reshape(3, -1).sum(axis=1).tolist() == [36233, 35645, 35220]


def test_npy_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    labels = rng.integers(0, 3, size=(1, 4, 6, 5)).astype(np.uint8)
    out = write_mask(Image(labels, (1.0, 1.0, 1.0)), tmp_path / "m.npy")
    np.testing.assert_array_equal(np.load(out), labels)
    np.testing.assert_array_equal(read_mask(out).array, labels)


def test_shape_mismatch_names_both_files(shared_data: Path) -> None:
    drive = shared_data / "drive_retina_vessels" / "test"
    small = Image(np.zeros((3, 100, 100), np.float32), (1.0, 1.0), source="small_image.png")
    with pytest.raises(InputError, match="small_image.png") as info:
        read_mask(drive / "1st_manual" / "01_manual1.gif", reference=small)
    assert info.value.path.endswith("01_manual1.gif")


def test_shifted_nifti_grid_is_refused(mni_labels: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    template_path, labels = mni_labels
    reference = read_nifti(template_path)
    shifted = reference.affine.copy()
    shifted[0, 3] += 2.0
    nib.save(nib.Nifti1Image(labels, shifted), tmp_path / "shifted.nii.gz")
    with pytest.raises(InputError, match="different grid"):
        read_mask(tmp_path / "shifted.nii.gz", reference=reference)


def test_non_integer_nifti_is_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), 0.5, np.float32), np.eye(4)), tmp_path / "p.nii")
    with pytest.raises(InputError, match="non-integer"):
        read_mask(tmp_path / "p.nii")


def test_write_refusals_leave_nothing_behind(tmp_path: Path) -> None:
    volume = Image(np.zeros((1, 2, 3, 3), np.uint8), (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="2D masks"):
        write_mask(volume, tmp_path / "v.png")
    with pytest.raises(InputError, match="write_dicom_seg"):
        write_mask(volume, tmp_path / "v.dcm")
    many = Image(np.full((1, 3, 3), 200, np.uint8), (1.0, 1.0))
    with pytest.raises(InputError, match="labels up to 200"):
        write_mask(many, tmp_path / "m.png")
    assert list(tmp_path.iterdir()) == []
