"""SegmentationDataset on real DRIVE fundus photographs (2D) and AdrenalMNIST3D volumes (3D)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medlens.data.image import Image
from medlens.data.readers import read_image
from medlens.data.segmentation_dataset import SegmentationDataset
from medlens.errors import ConfigError, InputError
from medlens.preprocess import build_pipeline

torch.set_num_threads(1)

AUGMENT = [
    {"name": "random_flip", "axes": [0, 1]},
    {"name": "random_rotate", "degrees": 30, "p": 1.0},
    {"name": "random_elastic", "alpha": 3.0, "sigma": 6.0, "p": 0.5},
    {"name": "random_gamma", "gamma": 1.3, "p": 0.5},
]


def _drive_case(folder: Path, number: int) -> tuple[Image, Image, Image]:
    image = read_image(folder / "images" / f"{number}_training.tif")
    vessels = read_image(folder / "1st_manual" / f"{number}_manual1.gif")
    fov = read_image(folder / "mask" / f"{number}_training_mask.gif")
    return (
        image.with_array(image.array / 255.0),
        Image((vessels.array > 127).astype(np.uint8), vessels.spacing, source=vessels.source),
        Image(fov.array > 127, fov.spacing, source=fov.source),
    )


@pytest.fixture(scope="module")
def drive_cases(shared_data: Path) -> list[tuple[Image, Image, Image]]:
    folder = shared_data / "drive_retina_vessels" / "training"
    return [_drive_case(folder, n) for n in (21, 22)]


@pytest.fixture(scope="module")
def adrenal_cases(adrenal_npz: Path) -> list[tuple[Image, Image, None]]:
    volumes = np.load(adrenal_npz)["train_images"][:3].astype(np.float32) / 255.0
    return [
        (
            Image(v[None], (1.0, 1.0, 1.0), source=f"adrenal#{i}"),
            Image((v > 0.5).astype(np.uint8)[None], (1.0, 1.0, 1.0), source=f"adrenal#{i}"),
            None,
        )
        for i, v in enumerate(volumes)
    ]


def _drive_dataset(cases, **kwargs) -> SegmentationDataset:
    options = {
        "augment": build_pipeline(AUGMENT),
        "patch_size": 64,
        "patches_per_image": 4,
        "seed": 3,
    }
    return SegmentationDataset(cases, **{**options, **kwargs})


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("image", "mask", "roi")) and (
        a["case_index"] == b["case_index"]
    )


def test_items_have_the_promised_shapes_and_types(drive_cases) -> None:
    dataset = _drive_dataset(drive_cases)
    assert len(dataset) == 8
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 64, 64)
        assert item["mask"].dtype == torch.int64 and item["mask"].shape == (1, 64, 64)
        assert item["roi"].dtype == torch.bool and item["roi"].shape == (1, 64, 64)
        assert item["case_index"] == index // 4
        assert set(item["mask"].unique().tolist()) <= {0, 1}


def test_same_seed_epoch_and_index_give_the_same_item_and_epochs_differ(drive_cases) -> None:
    first, second = _drive_dataset(drive_cases), _drive_dataset(drive_cases)
    for dataset in (first, second):
        dataset.set_epoch(2)
    items = [first[i] for i in range(len(first))]
    for i in reversed(range(len(first))):  # another order, another instance
        assert _same(second[i], items[i])
    first.set_epoch(3)
    assert not any(_same(first[i], items[i]) for i in range(len(first)))
    first.set_epoch(2)
    assert _same(first[5], items[5])
    assert not _same(_drive_dataset(drive_cases, seed=4)[5], items[5])


def test_a_pickled_dataset_gives_the_same_items(drive_cases) -> None:
    # DataLoader workers receive a pickled copy of the dataset
    dataset = _drive_dataset(drive_cases)
    dataset.set_epoch(1)
    copy = pickle.loads(pickle.dumps(dataset))
    assert _same(copy[6], dataset[6])


def test_augmented_vessel_masks_stay_on_the_vessels(drive_cases) -> None:
    # Vessels are the darkest structures of the green channel: over the same patches, the
    # voxels labelled vessel are about as much darker than the rest with augmentation as
    # without (rotation blurs thin vessels a little), unlike with the mask left unaugmented.
    def contrast(images: SegmentationDataset, masks: SegmentationDataset) -> float:
        green = np.concatenate([images[i]["image"][1].numpy().ravel() for i in range(16)])
        labels = np.concatenate([masks[i]["mask"][0].numpy().ravel() for i in range(16)])
        fov = np.concatenate([masks[i]["roi"][0].numpy().ravel() for i in range(16)])
        return float(green[fov & (labels == 0)].mean() - green[fov & (labels == 1)].mean())

    augmented = _drive_dataset(
        drive_cases, augment=build_pipeline(AUGMENT[:3]), patches_per_image=8
    )
    plain = _drive_dataset(drive_cases, augment=None, patches_per_image=8)
    assert plain.patch_plan(1) == augmented.patch_plan(1)
    expected = contrast(plain, plain)
    assert contrast(augmented, augmented) == pytest.approx(expected, rel=0.25)
    assert contrast(augmented, plain) < 0.5 * expected


def test_without_augmentation_an_item_is_the_planned_window(drive_cases) -> None:
    dataset = _drive_dataset(drive_cases, augment=None, patches_per_image=3)
    dataset.set_epoch(4)
    plan = dataset.patch_plan(1)
    image, mask, roi = drive_cases[1]
    for k, slices in enumerate(plan):
        item = dataset[3 + k]
        np.testing.assert_array_equal(item["image"].numpy(), image.array[(slice(None), *slices)])
        np.testing.assert_array_equal(item["mask"].numpy(), mask.array[(slice(None), *slices)])
        np.testing.assert_array_equal(item["roi"].numpy(), roi.array[(slice(None), *slices)])


def test_whole_images_when_there_is_no_patch_size(drive_cases) -> None:
    image, mask, _ = drive_cases[0]
    dataset = SegmentationDataset([(image, mask, None)], seed=0)
    item = dataset[0]
    np.testing.assert_array_equal(item["image"].numpy(), image.array.astype(np.float32))
    np.testing.assert_array_equal(item["mask"].numpy(), mask.array)
    assert item["roi"].shape == (1, *image.spatial_shape) and bool(item["roi"].all())


def test_3d_items_hold_foreground_at_least_as_often_as_asked(adrenal_cases) -> None:
    augment = build_pipeline(
        [
            {"name": "random_affine", "degrees": 20, "scale": 0.1, "p": 1.0},
            {"name": "random_flip", "axes": [0, 1, 2]},
        ]
    )
    dataset = SegmentationDataset(
        adrenal_cases,
        augment=augment,
        patch_size=[10, 12, 12],
        patches_per_image=3,
        foreground_fraction=0.34,  # one patch in three: exactly one per case and epoch
        seed=1,
    )
    held, seen, labelled, overlap = [], 0, 0, 0
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for case in range(3):
            items = [dataset[3 * case + k] for k in range(3)]
            assert all(it["image"].shape == (1, 10, 12, 12) for it in items)
            held.append([bool(it["mask"].any()) for it in items])
            for it in items:
                shown = it["image"][0].numpy() > 0.5  # the gland as the image shows it
                truth = it["mask"][0].numpy() == 1
                seen, labelled = seen + shown.sum(), labelled + truth.sum()
                overlap += (shown & truth).sum()
    assert all(any(h) for h in held)  # every case, every epoch
    assert np.mean(held) >= 0.34
    assert 2 * overlap / (seen + labelled) > 0.8  # masks moved with the volumes


def test_a_small_image_is_padded_and_the_padding_is_outside_the_roi() -> None:
    image = Image(np.ones((1, 20, 50), np.float32), (1.0, 1.0), source="small")
    labels = np.zeros((1, 20, 50), np.uint8)
    labels[0, 5:15, 20:30] = 1
    dataset = SegmentationDataset(
        [(image, Image(labels, (1.0, 1.0)), None)], patch_size=32, patches_per_image=4, seed=0
    )
    for index in range(4):
        item = dataset[index]
        assert item["image"].shape == (1, 32, 32)
        real_rows = np.r_[np.zeros(6, bool), np.ones(20, bool), np.zeros(6, bool)]  # centred
        np.testing.assert_array_equal(item["roi"][0].all(dim=1).numpy(), real_rows)
        np.testing.assert_array_equal(item["roi"][0].any(dim=1).numpy(), real_rows)
        assert (item["image"][0][~item["roi"][0]] == 0).all()
        assert (item["mask"][0][~item["roi"][0]] == 0).all()


def test_context_keeps_rotation_padding_out_of_the_patch(drive_cases) -> None:
    image, mask, _ = drive_cases[0]
    rotate = build_pipeline([{"name": "random_rotate", "degrees": [45, 45], "p": 1.0}])
    cases = [(image, mask, None)]
    kwargs = {"augment": rotate, "patch_size": 64, "patches_per_image": 6, "seed": 0}
    with_context = SegmentationDataset(cases, **kwargs)
    without = SegmentationDataset(cases, context=1.0, **kwargs)
    interior = [  # patches whose rotated region stays inside the image
        k
        for k, slices in enumerate(with_context.patch_plan(0))
        if all(
            s.start >= 14 and s.stop <= n - 14
            for s, n in zip(slices, image.spatial_shape, strict=True)
        )
    ]
    assert interior
    for k in interior:
        assert bool(with_context[k]["roi"].all())  # only real voxels
        assert not bool(without[k]["roi"].all())  # corners rotated in from outside the crop


def test_a_data_loader_batches_items(drive_cases) -> None:
    loader = DataLoader(_drive_dataset(drive_cases), batch_size=4, shuffle=False)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["mask"].shape == (4, 1, 64, 64)
    assert batch["roi"].dtype == torch.bool and batch["case_index"].tolist() == [0, 0, 0, 0]


def test_bad_cases_are_reported_with_their_source(drive_cases) -> None:
    image, mask, roi = drive_cases[0]
    soft = Image(mask.array.astype(np.float32), mask.spacing, source="soft.gif")
    with pytest.raises(InputError, match="soft.gif: mask holds float32 values"):
        SegmentationDataset([(image, soft, roi)])
    cropped = Image(mask.array[:, :100], mask.spacing, source="cropped.gif")
    with pytest.raises(InputError, match="cropped.gif: mask grid"):
        SegmentationDataset([(image, cropped, roi)])
    two = Image(np.concatenate([mask.array, mask.array]), mask.spacing, source="two.nii")
    with pytest.raises(InputError, match="two.nii: mask has 2 channels"):
        SegmentationDataset([(image, two, roi)])
    nan = image.with_array(np.where(mask.array > 0, np.nan, image.array))
    with pytest.raises(InputError, match="NaN"):
        SegmentationDataset([(nan, mask, roi)])


def test_bad_settings_are_reported(drive_cases) -> None:
    with pytest.raises(ConfigError, match="patches_per_image"):
        SegmentationDataset(drive_cases, patch_size=64, patches_per_image=0)
    with pytest.raises(ConfigError, match="foreground_fraction"):
        SegmentationDataset(drive_cases, patch_size=64, foreground_fraction=-0.1)
    with pytest.raises(ConfigError, match="patch_size"):
        SegmentationDataset(drive_cases, patch_size=[64, 64, 64])
    with pytest.raises(TypeError, match="apply_joint"):
        SegmentationDataset(drive_cases, augment=lambda image, rng: image)  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        SegmentationDataset(drive_cases)[2]
