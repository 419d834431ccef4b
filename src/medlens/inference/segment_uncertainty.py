"""Per-voxel uncertainty of a segmentation run (``medlens predict --uncertainty``).

Sampled probability maps (each calibrated with the run's per-voxel temperature) are
accumulated voxel by voxel, never all held at once: the mean probability, the predictive
entropy of the mean and the mutual information (nats). Both maps go back onto the image's
own grid and are written next to the mask; a per-case summary goes into
``segmentations.csv``:

- ``mean_entropy``, ``mean_mutual_information``: over every voxel of the image (``predict``
  and the service are given images, not field-of-view masks);
- ``expected_dice``: the Dice the calibrated mean probabilities expect of the mask, averaged
  over the foreground classes (``medlens.trust.measures.expected_dice``);
- ``uncertainty``: ``1 - expected_dice``, the summary to sort cases by.

Methods:
    tta: every combination of flipped spatial axes (4 views in 2D, 8 in 3D);
    mc_dropout: ``MC_SAMPLES`` sliding-window passes with dropout active, seeded.
"""

from __future__ import annotations

import gzip
import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlens.data.image import Image
from medlens.errors import ConfigError
from medlens.inference.uncertainty import MC_SEED, check_mc_dropout, dropout_layers
from medlens.io_utils import write_atomic
from medlens.trust.measures import entropy, expected_dice

MC_SAMPLES = 10
_COPIED_ATTRIBUTES = ("spatial_dims", "in_channels", "num_classes", "size_divisor", "config")


class _DropoutActive(nn.Module):
    """``model`` with its dropout layers in training mode during every forward pass (the
    sliding window puts the model in eval mode first)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        for name in _COPIED_ATTRIBUTES:
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = dropout_layers(self.model)
        for layer in layers:
            layer.train()
        try:
            return self.model(x)
        finally:
            for layer in layers:
                layer.eval()


@dataclass
class UncertaintyMaps:
    """One case's maps on the image's grid and its summary.

    Attributes:
        mean_probs: ``(K, *spatial)`` mean calibrated probabilities.
        entropy: ``(*spatial)`` predictive entropy, nats.
        mutual_information: ``(*spatial)`` nats.
    """

    mean_probs: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray

    def summary(self, labels: np.ndarray) -> dict[str, float]:
        """The per-case columns for the mask ``labels``, over every voxel (see the module
        docstring)."""
        dice = [
            expected_dice(self.mean_probs[k], labels == k)
            for k in range(1, self.mean_probs.shape[0])
        ]
        expected = float(np.mean(dice)) if dice else 1.0
        return {
            "mean_entropy": float(self.entropy.mean()),
            "mean_mutual_information": float(self.mutual_information.mean()),
            "expected_dice": expected,
            "uncertainty": 1.0 - expected,
        }


def _calibrate_map(run: Any, probs: np.ndarray) -> np.ndarray:
    """The run's calibrator applied to every voxel of ``probs`` ``(K, *spatial)``."""
    flat = probs.reshape(probs.shape[0], -1).T.astype(np.float64)
    flat /= np.clip(flat.sum(axis=1, keepdims=True), 1e-12, None)
    return run.trust.calibrator.transform(flat).T.reshape(probs.shape).astype(np.float32)


def sample_maps(run: Any, x: np.ndarray, method: str) -> UncertaintyMaps:
    """Uncertainty maps of a preprocessed image ``x`` ``(C, *spatial)`` on its grid.

    Raises:
        ConfigError: ``ensemble`` (segmentation runs are not ensembled), or ``mc_dropout``
            for a network without dropout.
    """
    from medlens.inference.sliding_window import sliding_window_predict

    scfg = run.config.segmentation
    window = {
        "roi_size": list(scfg.patch_size or x.shape[1:]),
        "overlap": scfg.overlap,
        "sw_batch_size": scfg.sw_batch_size,
        "device": run.device,
    }
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    spatial = range(1, x.ndim)
    if method == "tta":
        views = [
            axes for k in range(len(spatial) + 1) for axes in itertools.combinations(spatial, k)
        ]
        model: nn.Module = run.model
        context: Any = torch.random.fork_rng(devices=[])
    elif method == "mc_dropout":
        check_mc_dropout(run.model, run.run_dir)
        views = [()] * MC_SAMPLES
        model = _DropoutActive(run.model)
        context = torch.random.fork_rng(devices=[])
    else:
        raise ConfigError(
            "--uncertainty", f"segmentation runs take tta or mc_dropout, not {method}"
        )
    total = entropy_sum = None
    with context:
        torch.manual_seed(MC_SEED)
        for axes in views:
            flipped = tensor.flip(axes) if axes else tensor
            probs = sliding_window_predict(model, flipped, **window)[0]
            probs = probs.flip(axes) if axes else probs  # (K, *spatial): the same axes
            p = _calibrate_map(run, probs.float().cpu().numpy())
            h = entropy(p, axis=0)
            total = p if total is None else total + p
            entropy_sum = h if entropy_sum is None else entropy_sum + h
    assert total is not None and entropy_sum is not None
    mean = total / len(views)
    predictive = entropy(mean, axis=0)
    return UncertaintyMaps(mean, predictive, np.maximum(predictive - entropy_sum / len(views), 0.0))


def on_image_grid(maps: UncertaintyMaps, image: Image) -> UncertaintyMaps:
    """The maps resampled (linearly) onto ``image``'s own grid."""
    from medlens.inference.resample import resample_probabilities

    shape = tuple(image.spatial_shape)

    def back(values: np.ndarray) -> np.ndarray:
        return resample_probabilities(values, shape)

    return UncertaintyMaps(
        back(maps.mean_probs),
        back(maps.entropy[None])[0],
        back(maps.mutual_information[None])[0],
    )


def write_map(values: np.ndarray, image: Image, path: Path, max_value: float) -> Path:
    """Write an uncertainty map: ``.png`` (2D) as 16 bits, 65535 = ``max_value`` (log K nats
    for entropy); ``.nii.gz`` as float32 nats with the image's affine."""
    import nibabel as nib
    import PIL.Image

    from medlens.data.masks import ras_affine

    if path.name.endswith(".png"):
        scaled = np.clip(values / max_value, 0.0, 1.0) * 65535
        buffer = io.BytesIO()
        PIL.Image.fromarray(np.rint(scaled).astype(np.uint16)).save(buffer, format="PNG")
        return write_atomic(path, buffer.getvalue())
    affine = ras_affine(image)
    if affine is None or values.ndim != 3:
        affine = np.diag([*image.spacing, *([1.0] * (4 - len(image.spacing)))])
    nifti = nib.Nifti1Image(values.astype(np.float32), affine)
    nifti.header.set_xyzt_units("mm")
    return write_atomic(path, gzip.compress(nifti.to_bytes(), mtime=0))
