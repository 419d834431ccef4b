"""Mixing synthetic images into a small real training set, as a MedMNIST ``.npz`` that any
classification config can train on (``data.format: medmnist``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from medlens.data.medmnist import load_medmnist_npz
from medlens.errors import InputError
from medlens.io_utils import write_atomic
from medlens.train.gan.data import train_subset_indices


def _labels_column(labels: np.ndarray) -> np.ndarray:
    return labels.reshape(-1, 1).astype(np.uint8 if labels.max(initial=0) < 256 else np.int64)


def augment_with_synthetic(
    real_npz: str | Path,
    synthetic_npz: str | Path,
    out_npz: str | Path,
    fraction_used: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write a MedMNIST ``.npz`` whose train split is the stratified ``fraction_used`` of the
    real train split followed by every synthetic training image; val and test are the real
    ones, unchanged.

    The real subset is the one a classification run with ``data.train_fraction_used:
    fraction_used`` and ``seed: seed`` would draw, so a run on the mixed file and a run on
    the real file with that fraction differ only by the synthetic images. Two extra arrays
    record the provenance of each training image: ``train_is_synthetic`` (bool) and
    ``train_source_index`` (position in the real train split, -1 for synthetic images).

    Args:
        real_npz: the real MedMNIST file.
        synthetic_npz: synthetic images in MedMNIST layout (``sample_gan`` output); only its
            ``train_images``/``train_labels`` are used.
        out_npz: the mixed file to write (atomically).
        fraction_used: share of the real train split kept, in (0, 1].
        seed: seeds the stratified draw.

    Returns:
        ``out_npz``.

    Raises:
        InputError: an unreadable file, synthetic images of another shape than the real
            ones, or synthetic labels that are not classes of the real file.
        ConfigError: ``fraction_used`` outside (0, 1].
    """
    real = load_medmnist_npz(real_npz)
    synthetic = load_medmnist_npz(synthetic_npz)
    fake_images, fake_labels = synthetic.images["train"], synthetic.labels["train"]
    real_shape = real.images["train"].shape[1:]
    if fake_images.shape[1:] != real_shape:
        raise InputError(
            synthetic_npz,
            f"synthetic images are {fake_images.shape[1:]} but the real images of "
            f"{Path(real_npz).name} are {real_shape}; sample them with the real file given",
        )
    n_classes = 1 + max(int(lab.max(initial=0)) for lab in real.labels.values())
    if fake_labels.size and fake_labels.max() >= n_classes:
        raise InputError(
            synthetic_npz,
            f"holds label {int(fake_labels.max())} but the real file has classes 0..{n_classes - 1}",
        )
    keep = train_subset_indices(real, fraction_used, seed)
    arrays = {
        "train_images": np.concatenate([real.images["train"][keep], fake_images]),
        "train_labels": _labels_column(np.concatenate([real.labels["train"][keep], fake_labels])),
        "train_is_synthetic": np.r_[np.zeros(len(keep), bool), np.ones(len(fake_labels), bool)],
        "train_source_index": np.r_[keep, np.full(len(fake_labels), -1, dtype=np.int64)],
    }
    for split in ("val", "test"):
        arrays[f"{split}_images"] = real.images[split]
        arrays[f"{split}_labels"] = _labels_column(real.labels[split])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomic(out_npz, buffer.getvalue())
