"""Segmentation sources on real data: DRIVE, a Decathlon / nnU-Net layout built from nilearn's
MNI152 template, and plain images/ + masks/ folders."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pytest
from nilearn.datasets import load_mni152_gm_mask, load_mni152_template, load_mni152_wm_mask

from medlens.data.case import CaseSet
from medlens.data.dataset import CaseDataset
from medlens.data.segmentation import open_segmentation_source
from medlens.errors import ConfigError, InputError

# two crops of the 2 mm template (voxel index ranges), so the cases differ in shape
CROPS = {
    "brain_001": (slice(25, 75), slice(30, 90), slice(25, 70)),
    "brain_002": (slice(20, 60), slice(40, 80), slice(30, 60)),
}


@pytest.fixture(scope="module")
def mni() -> tuple[nib.Nifti1Image, np.ndarray]:
    """nilearn's MNI152 template (shipped with nilearn, no download) and GM=1 / WM=2 labels."""
    template = load_mni152_template(resolution=2)
    gm = np.asarray(load_mni152_gm_mask(resolution=2).dataobj) > 0
    wm = np.asarray(load_mni152_wm_mask(resolution=2).dataobj) > 0
    return template, np.where(wm, 2, np.where(gm, 1, 0)).astype(np.uint8)


def make_decathlon(
    root: Path, mni: tuple[nib.Nifti1Image, np.ndarray], nnunet_v2: bool = False
) -> dict[str, tuple[nib.Nifti1Image, np.ndarray]]:
    """imagesTr/ + labelsTr/ + dataset.json; nnU-Net v2 adds a second channel file per case."""
    template, labels = mni
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    made = {}
    for case, crop in CROPS.items():
        image = template.slicer[crop]
        label = nib.Nifti1Image(labels[crop], image.affine)
        if nnunet_v2:
            nib.save(image, root / "imagesTr" / f"{case}_0000.nii.gz")
            squared = nib.Nifti1Image(np.asarray(image.dataobj, np.float32) ** 2, image.affine)
            nib.save(squared, root / "imagesTr" / f"{case}_0001.nii.gz")
        else:
            nib.save(image, root / "imagesTr" / f"{case}.nii.gz")
        nib.save(label, root / "labelsTr" / f"{case}.nii.gz")
        made[case] = (image, labels[crop])
    if nnunet_v2:
        description = {
            "channel_names": {"0": "T1", "1": "T1 squared"},
            "labels": {"background": 0, "grey matter": 1, "white matter": 2},
            "numTraining": 2,
            "file_ending": ".nii.gz",
        }
    else:
        description = {"labels": {"0": "background", "1": "grey matter", "2": "white matter"}}
    (root / "dataset.json").write_text(json.dumps(description))
    return made


def test_drive_official_split_and_masks(shared_data: Path) -> None:
    root = shared_data / "drive_retina_vessels"
    source = open_segmentation_source(root)
    assert source.layout == "drive"
    case_set: CaseSet = source  # what the trainer takes
    tensor, label, _ = CaseDataset(case_set, case_set.cases[:1])[0]
    assert tuple(tensor.shape) == (3, 584, 565) and label == -1
    assert source.class_names == ["background", "vessel"]
    splits = [c.split for c in source.cases]
    assert splits.count("train") == 20 and splits.count("test") == 20
    assert all(c.label is None for c in source.cases)
    for case in source.cases:
        image = source.load(case)
        mask = source.load_mask(case, image)
        roi = source.load_roi(case, image)
        assert image.array.shape == (3, 584, 565)
        assert mask.array.shape == (1, 584, 565) and mask.array.dtype == np.uint8
        assert roi is not None and roi.array.dtype == bool and roi.array.shape == (1, 584, 565)
        number = case.case_id.split("/")[1]
        folder = root / ("training" if case.split == "train" else "test")
        stored = np.asarray(PIL.Image.open(folder / "1st_manual" / f"{number}_manual1.gif"))
        np.testing.assert_array_equal(mask.array[0], stored > 127)
        fov = np.asarray(PIL.Image.open(next((folder / "mask").glob(f"{number}_*"))))
        np.testing.assert_array_equal(roi.array[0], fov > 127)
        assert 0.5 < roi.array.mean() < 0.8  # the round field of view
        assert 0.04 < mask.array.mean() < 0.15  # vessels are a small part of the picture


def test_drive_image_without_mask_is_named(shared_data: Path, tmp_path: Path) -> None:
    real = shared_data / "drive_retina_vessels" / "training"
    for sub in ("images", "1st_manual", "mask"):
        (tmp_path / "training" / sub).mkdir(parents=True)
    for name in ("21_training.tif", "22_training.tif"):
        (tmp_path / "training" / "images" / name).symlink_to(real / "images" / name)
    (tmp_path / "training" / "1st_manual" / "21_manual1.gif").symlink_to(
        real / "1st_manual" / "21_manual1.gif"
    )
    with pytest.raises(InputError, match="no partner vessel mask") as info:
        open_segmentation_source(tmp_path, layout="drive")
    assert info.value.path.endswith("22_training.tif")


def test_decathlon_layout(mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path) -> None:
    made = make_decathlon(tmp_path / "Task01_Brain", mni)
    source = open_segmentation_source(tmp_path / "Task01_Brain")
    assert source.layout == "msd"
    assert source.class_names == ["background", "grey matter", "white matter"]
    assert [c.case_id for c in source.cases] == ["brain_001", "brain_002"]
    assert all(c.split is None and c.label is None for c in source.cases)
    for case in source.cases:
        reference, labels = made[case.case_id]
        image = source.load(case)
        mask = source.load_mask(case)
        assert image.array.shape == (1, *labels.shape)
        np.testing.assert_array_equal(mask.array[0], labels)
        np.testing.assert_allclose(mask.affine, reference.affine)
        assert mask.spacing == (2.0, 2.0, 2.0)
        assert source.load_roi(case) is None


def test_nnunet_v2_channels_and_labels(
    mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path
) -> None:
    made = make_decathlon(tmp_path, mni, nnunet_v2=True)
    source = open_segmentation_source(tmp_path, layout="msd")
    assert source.class_names == ["background", "grey matter", "white matter"]
    case = source.cases[0]
    assert case.case_id == "brain_001" and case.source.endswith("brain_001_0000.nii.gz")
    image = source.load(case)
    _, labels = made["brain_001"]
    files = [tmp_path / "imagesTr" / f"brain_001_000{c}.nii.gz" for c in (0, 1)]
    expected = np.stack([nib.load(f).get_fdata(dtype=np.float32) for f in files])
    assert image.array.shape == (2, *labels.shape)
    np.testing.assert_allclose(image.array, expected, rtol=1e-6)
    np.testing.assert_array_equal(source.load_mask(case, image).array[0], labels)


def test_decathlon_test_images(mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path) -> None:
    make_decathlon(tmp_path, mni)
    (tmp_path / "imagesTs").mkdir()
    template = mni[0].slicer[CROPS["brain_002"]]
    nib.save(template, tmp_path / "imagesTs" / "brain_101.nii.gz")
    unlabelled = open_segmentation_source(tmp_path)
    assert [c.case_id for c in unlabelled.cases] == ["brain_001", "brain_002"]
    assert [p.name for p in unlabelled.unlabelled] == ["brain_101.nii.gz"]

    (tmp_path / "labelsTs").mkdir()
    label = nib.Nifti1Image(mni[1][CROPS["brain_002"]], template.affine)
    nib.save(label, tmp_path / "labelsTs" / "brain_101.nii.gz")
    labelled = open_segmentation_source(tmp_path)
    assert [(c.case_id, c.split) for c in labelled.cases] == [
        ("brain_001", "train"),
        ("brain_002", "train"),
        ("brain_101", "test"),
    ]
    assert labelled.unlabelled == []


def test_decathlon_label_without_image(
    mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path
) -> None:
    make_decathlon(tmp_path, mni)
    (tmp_path / "imagesTr" / "brain_002.nii.gz").unlink()
    with pytest.raises(InputError, match="no partner image") as info:
        open_segmentation_source(tmp_path)
    assert info.value.path.endswith("labelsTr/brain_002.nii.gz")


def test_labels_outside_class_names(
    mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path
) -> None:
    make_decathlon(tmp_path, mni)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "gm"}}))
    source = open_segmentation_source(tmp_path)
    with pytest.raises(InputError, match=r"label values \[2\]") as info:
        source.load_mask(source.cases[0])
    assert info.value.path.endswith("labelsTr/brain_001.nii.gz")


def test_mask_shape_mismatch_names_both_files(
    mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path
) -> None:
    made = make_decathlon(tmp_path, mni)
    image, labels = made["brain_001"]
    nib.save(nib.Nifti1Image(labels[:-1], image.affine), tmp_path / "labelsTr" / "brain_001.nii.gz")
    source = open_segmentation_source(tmp_path)
    with pytest.raises(InputError, match="imagesTr/brain_001.nii.gz") as info:
        source.load_mask(source.cases[0])
    assert info.value.path.endswith("labelsTr/brain_001.nii.gz")


def test_region_labels_are_refused(mni: tuple[nib.Nifti1Image, np.ndarray], tmp_path: Path) -> None:
    make_decathlon(tmp_path, mni)
    regions = {"labels": {"background": 0, "brain": [1, 2]}}
    (tmp_path / "dataset.json").write_text(json.dumps(regions))
    with pytest.raises(InputError, match="region labels"):
        open_segmentation_source(tmp_path)


def test_folder_layout_with_splits(shared_data: Path, tmp_path: Path) -> None:
    drive = shared_data / "drive_retina_vessels" / "training"
    picture = np.asarray(PIL.Image.open(drive / "images" / "21_training.tif"))
    vessels = np.asarray(PIL.Image.open(drive / "1st_manual" / "21_manual1.gif"))
    tiles = {"train": (slice(0, 200), slice(0, 200)), "test": (slice(300, 500), slice(300, 500))}
    for split, tile in tiles.items():
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir()
        PIL.Image.fromarray(picture[tile]).save(tmp_path / split / "images" / "tile.png")
        PIL.Image.fromarray(vessels[tile]).save(tmp_path / split / "labels" / "tile.png")
    source = open_segmentation_source(tmp_path, class_names=["background", "vessel"])
    assert source.layout == "folder"
    assert [(c.case_id, c.split) for c in source.cases] == [
        ("train/images/tile.png", "train"),
        ("test/images/tile.png", "test"),
    ]
    for case, tile in zip(source.cases, tiles.values(), strict=True):
        assert source.load(case).array.shape == (3, 200, 200)
        np.testing.assert_array_equal(source.load_mask(case).array[0], vessels[tile] > 127)


def test_folder_with_dicom_series_and_seg(ct_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "abdomen").symlink_to(ct_dir, target_is_directory=True)
    (tmp_path / "masks" / "abdomen.dcm").symlink_to(ct_dir.parent / "seg" / "liver.dcm")
    source = open_segmentation_source(tmp_path, class_names=["background", "liver"])
    mask = source.load_mask(source.cases[0])
    assert mask.array.shape == (1, 3, 512, 512)
    assert mask.array.reshape(3, -1).sum(axis=1).tolist() == [36233, 35645, 35220]


def test_folder_mask_without_image(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    PIL.Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "images" / "a.png")
    PIL.Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "a.png")
    PIL.Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "b.png")
    with pytest.raises(InputError, match="no partner image") as info:
        open_segmentation_source(tmp_path)
    assert info.value.path.endswith("masks/b.png")


def test_unknown_layouts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="layout"):
        open_segmentation_source(tmp_path, layout="coco")
    with pytest.raises(InputError, match="no segmentation layout"):
        open_segmentation_source(tmp_path)
