"""Per-voxel temperature scaling of a segmenter, fitted on validation voxels.

While the validation and test cases are predicted, a seeded sample of each case's voxels
(inside its field of view) is kept: the probability vector and the reference label. One
temperature is fitted on the validation voxels (``medlens.trust.calibrators``); the voxel
ECE and Brier score before and after are recorded for both splits. Masks do not change: the
arg-max is unchanged, and two-class masks at 0.5 are too; the configured post-processing
threshold keeps the meaning it was scored with (the raw probabilities). The calibrated
probabilities are what the uncertainty maps of ``medlens predict --uncertainty`` read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlens.config import RunConfig
from medlens.errors import ConfigError
from medlens.tasks import SEGMENTATION
from medlens.trust.calibrators import Calibrator, fit_calibrator

#: Voxels kept per case, and at most per split (a seeded sample).
VOXELS_PER_CASE = 20_000
VOXELS_PER_SPLIT = 1_000_000
#: What segmentation runs fit (``Task.calibration_methods``).
SEGMENTATION_METHODS: tuple[str, ...] = SEGMENTATION.calibration_methods or ()


def check_segmentation_calibration(config: RunConfig) -> None:
    """Refuse a calibration method segmentation runs do not fit.

    Raises:
        ConfigError: ``bcts``, ``dirichlet`` or ``isotonic`` (keyed ``calibration.method``).
    """
    if config.calibration.method not in SEGMENTATION_METHODS:
        raise ConfigError(
            "calibration.method",
            f"segmentation runs fit temperature (per voxel) or none, not "
            f"{config.calibration.method}",
        )


class VoxelSample:
    """Probability vectors and reference labels of sampled voxels, per split.

    Args:
        seed: seeds which voxels are kept.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.probs: dict[str, list[np.ndarray]] = {}
        self.labels: dict[str, list[np.ndarray]] = {}

    def add(
        self, split: str, probs: np.ndarray, reference: np.ndarray, roi: np.ndarray | None
    ) -> None:
        """Keep up to ``VOXELS_PER_CASE`` voxels of one case.

        Args:
            probs: ``(K, *spatial)`` probabilities.
            reference: ``(*spatial)`` reference labels.
            roi: ``(*spatial)`` bool field of view, or None.
        """
        flat = probs.reshape(probs.shape[0], -1)
        labels = reference.reshape(-1)
        inside = np.flatnonzero(roi.reshape(-1)) if roi is not None else np.arange(labels.size)
        kept = sum(len(y) for y in self.labels.get(split, []))
        room = max(0, min(VOXELS_PER_CASE, VOXELS_PER_SPLIT - kept))
        if room == 0 or inside.size == 0:
            return
        chosen = self.rng.choice(inside, size=min(room, inside.size), replace=False)
        p = flat[:, chosen].T.astype(np.float64)
        p /= np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
        self.probs.setdefault(split, []).append(p)
        self.labels.setdefault(split, []).append(labels[chosen].astype(int))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (V, K), labels (V,))`` of a split's kept voxels."""
        return np.concatenate(self.probs[name]), np.concatenate(self.labels[name])


def fit_voxel_calibration(
    config: RunConfig, sample: VoxelSample
) -> tuple[Calibrator, dict[str, Any]]:
    """The calibrator fitted on the validation voxels, and ``metrics.json``'s ``trust``
    record (voxel ECE and Brier before and after, per split)."""
    from medlens.trust.summary import calibration_summary

    probs, labels = sample.split("val")
    calibrator = fit_calibrator(config.calibration.method, probs, labels)
    raw: dict[str, np.ndarray] = {}
    truth: dict[str, np.ndarray] = {}
    for split in ("val", "test"):
        if split in sample.probs:
            raw[split], truth[split] = sample.split(split)
    calibrated = {split: calibrator.transform(p) for split, p in raw.items()}
    threshold = 0.5 if probs.shape[1] == 2 else None
    record = calibration_summary(calibrator, truth, raw, calibrated, threshold)
    record["unit"] = "voxel"
    record["voxels"] = {split: int(len(y)) for split, y in truth.items()}
    return calibrator, {"calibration": record}
