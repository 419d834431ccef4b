"""The real images a GAN learns from, and the conversions between stored pixels (uint8,
MedMNIST layout) and the generator's scale (float, channel first, values in [-1, 1])."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medlens.data.medmnist import MedMNISTArrays, MedMNISTSource, load_medmnist_npz
from medlens.data.splits import subsample_train
from medlens.errors import InputError


@dataclass(frozen=True)
class GanData:
    """The training images of a GAN run.

    Attributes:
        images: float32 ``(N, C, S, S)``, values in [-1, 1], resized to the GAN's side S (px).
        labels: int64 ``(N,)`` class indices.
        class_names: one name per class index.
        indices: positions of these images in the file's train split.
        val_images: the file's validation split, on the same scale (a reference for quality).
        val_labels: its labels.
        stored_shape: one stored image's shape, ``(H, W)`` or ``(H, W, 3)`` (px).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    indices: np.ndarray
    val_images: torch.Tensor
    val_labels: torch.Tensor
    stored_shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def train_subset_indices(arrays: MedMNISTArrays, fraction: float, seed: int) -> np.ndarray:
    """Positions in the train split of the stratified ``fraction`` that a classification run
    with ``data.train_fraction_used: fraction`` and ``seed: seed`` trains on (the same draw,
    through ``medlens.data.splits.subsample_train``), in increasing order.

    Raises:
        ConfigError: ``fraction`` outside (0, 1].
    """
    source = MedMNISTSource(arrays)
    train = [c for c in source.cases if c.split == "train"]
    kept = subsample_train(train, fraction, seed)
    return np.array([int(c.case_id.partition("/")[2]) for c in kept], dtype=np.int64)


def check_2d(arrays: MedMNISTArrays) -> None:
    """Raises ``InputError`` unless the file holds 2D grey or RGB images."""
    if arrays.layout == "volume":
        raise InputError(
            arrays.path, "holds 3D volumes; the GAN makes 2D images (grey or RGB) only"
        )


def to_generator_scale(pixels: np.ndarray, image_size: int) -> torch.Tensor:
    """Stored uint8 images ``(N, H, W)`` or ``(N, H, W, 3)`` -> float32 ``(N, C, S, S)`` in
    [-1, 1]; images of another side are resized (bilinear, antialiased) to ``image_size`` px."""
    array = pixels[:, None] if pixels.ndim == 3 else np.moveaxis(pixels, -1, 1)
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)) / 127.5 - 1.0
    if tuple(x.shape[-2:]) != (image_size, image_size) and len(x):
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        ).clamp(-1.0, 1.0)
    return x


def to_stored_pixels(images: torch.Tensor, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Generator output ``(N, C, S, S)`` in [-1, 1] -> uint8 ``(N, H, W)`` (grey) or
    ``(N, H, W, 3)`` (RGB), the MedMNIST layout, resized to ``shape`` ``(H, W[, 3])`` (px)
    when given."""
    x = images.detach().float().cpu()
    if shape is not None and tuple(x.shape[-2:]) != tuple(shape[:2]) and len(x):
        x = F.interpolate(
            x, size=tuple(shape[:2]), mode="bilinear", antialias=True, align_corners=False
        )
    pixels = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    return pixels[:, 0] if pixels.shape[1] == 1 else np.moveaxis(pixels, 1, -1)


def load_gan_data(path: str | Path, image_size: int, fraction: float, seed: int) -> GanData:
    """The stratified ``fraction`` of a MedMNIST file's train split, at ``image_size`` px.

    Raises:
        InputError: an unreadable file, 3D volumes, or fewer than 2 training images.
        ConfigError: ``fraction`` outside (0, 1].
    """
    arrays = load_medmnist_npz(path)
    check_2d(arrays)
    indices = train_subset_indices(arrays, fraction, seed)
    labels = arrays.labels["train"][indices]
    if len(indices) < 2:
        raise InputError(path, f"the GAN needs at least 2 training images, got {len(indices)}")
    class_names = MedMNISTSource(arrays).class_names
    return GanData(
        images=to_generator_scale(arrays.images["train"][indices], image_size),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(class_names),
        indices=indices,
        val_images=to_generator_scale(arrays.images["val"], image_size),
        val_labels=torch.from_numpy(arrays.labels["val"].astype(np.int64)),
        stored_shape=tuple(arrays.images["train"].shape[1:]),
    )
