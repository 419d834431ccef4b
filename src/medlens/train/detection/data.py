"""The images of a detection run: read, checked and preprocessed once; augmented every epoch
(boxes and masks moved with the pixels), as torchvision's detectors take them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medlens.config import RunConfig
from medlens.data.boxes.source import DetectionSource
from medlens.data.case import Case
from medlens.errors import InputError
from medlens.inference.detect import NetworkInput
from medlens.metrics.detection.objects import ReferenceObjects

SPLITS = ("train", "val", "test")


@dataclass
class PreparedImage:
    """One image after the deterministic preprocessing, its objects moved alike.

    Attributes:
        case: the source's case.
        item: the network input and the steps that map its outputs back.
        boxes: ``(N, 4)`` float32 on the preprocessed grid (objects the preprocessing cut
            away are gone).
        labels: ``(N,)`` int64, 0-based.
        crowd: ``(N,)`` bool.
        masks: ``(N, h, w)`` bool on the preprocessed grid, or None.
        reference: every object on the original image, for scoring.
    """

    case: Case
    item: NetworkInput
    boxes: np.ndarray
    labels: np.ndarray
    crowd: np.ndarray
    masks: np.ndarray | None
    reference: ReferenceObjects


def split_cases(config: RunConfig, cases: Sequence[Case]) -> dict[str, list[Case]]:
    """k-fold (``data.folds``), the official split (validation carved from train when it has
    none), or a random split by image, stratified by each image's rarest class.

    Raises:
        InputError: a split without images.
    """
    from medlens.data.splits import (
        assign_splits,
        carve_validation,
        subsample_train,
        with_kfold_split,
    )

    dcfg = config.data
    cases = list(cases)
    official = any(c.split == "test" for c in cases) and any(c.split == "train" for c in cases)
    if dcfg.folds is not None:
        cases = with_kfold_split(cases, dcfg.folds, dcfg.fold, dcfg.val_fraction, seed=0)
    elif dcfg.split == "official" and official:
        if not any(c.split == "val" for c in cases):
            cases = carve_validation(cases, dcfg.val_fraction, seed=0)
    else:
        cases = assign_splits(cases, dcfg.val_fraction, dcfg.test_fraction, seed=0)
    splits = {name: [c for c in cases if c.split == name] for name in SPLITS}
    for name in SPLITS:
        if not splits[name]:
            raise InputError(dcfg.path, f"the {name} split has no image")
    if dcfg.train_fraction_used < 1.0:
        splits["train"] = subsample_train(splits["train"], dcfg.train_fraction_used, config.seed)
    return splits


def prepare_image(source: DetectionSource, case: Case, preprocess: Any) -> PreparedImage:
    """Read an image and its objects and preprocess them together.

    Raises:
        InputError: an unreadable image, a volume, an instance mask off the image's grid, or
            NaN values.
    """
    from medlens.inference.detect import NetworkInput
    from medlens.preprocess.boxes import run_with_boxes

    image = source.load(case)
    if image.spatial_dims != 2:
        raise InputError(case.source or case.case_id, "detection takes 2D images, not volumes")
    if not np.isfinite(image.array).all():
        raise InputError(case.source or case.case_id, "image holds NaN or infinite values")
    size = (int(image.spatial_shape[0]), int(image.spatial_shape[1]))
    record_size = source.record(case).size
    if record_size is not None and tuple(record_size) != size:
        raise InputError(
            source.record(case).annotation,
            f"declares an image of {record_size[1]} x {record_size[0]} pixels; "
            f"{case.source} has {size[1]} x {size[0]}",
        )
    targets = source.targets(case, size)
    out, boxes, keep, masks, steps = run_with_boxes(preprocess, image, targets.boxes, targets.masks)
    reference = ReferenceObjects.of(
        targets.boxes, targets.labels, targets.crowd, targets.masks, image_id=case.case_id
    )
    return PreparedImage(
        case=case,
        item=NetworkInput(out, steps, size, case.case_id),
        boxes=boxes,
        labels=targets.labels[keep],
        crowd=targets.crowd[keep],
        masks=masks,
        reference=reference,
    )


def classes_without_training_objects(
    prepared: Sequence[PreparedImage], class_names: Sequence[str]
) -> list[str]:
    """The classes no training image holds an object of (a rare class can miss a fold of a
    k-fold split): the detector cannot learn them; the run records them."""
    seen: set[int] = set()
    for p in prepared:
        seen.update(int(k) for k in p.labels[~p.crowd])
    return [name for k, name in enumerate(class_names) if k not in seen]


class DetectionDataset(Dataset):
    """Training images with fresh augmentation draws each epoch.

    Item ``i`` of epoch ``e`` draws from ``numpy.random.default_rng([seed, e, i])``, so the
    draws do not depend on the loader's workers or order. Crowd regions are left out of the
    targets (torchvision's detectors have no ignore regions); labels become 1-based (0 is
    the background).

    Args:
        images: the prepared training images.
        augment: a ``Compose`` of (random) transforms, or None.
        seed: the run's seed.
    """

    def __init__(self, images: Sequence[PreparedImage], augment: Any | None, seed: int) -> None:
        self.images = list(images)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from medlens.preprocess.boxes import apply_with_boxes

        p = self.images[index]
        image, boxes, labels, crowd, masks = p.item.image, p.boxes, p.labels, p.crowd, p.masks
        if self.augment is not None and len(self.augment):
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, boxes, keep, masks = apply_with_boxes(self.augment, image, boxes, masks, rng)
            labels, crowd = labels[keep], crowd[keep]
        target = {
            "boxes": torch.as_tensor(boxes[~crowd], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(labels[~crowd] + 1, dtype=torch.int64),
        }
        if masks is not None:
            target["masks"] = torch.as_tensor(masks[~crowd], dtype=torch.uint8)
        array = np.ascontiguousarray(image.array, dtype=np.float32)
        return torch.from_numpy(array), target


def collate(batch: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """A batch as torchvision's detectors take it: a list of images and a list of targets."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
