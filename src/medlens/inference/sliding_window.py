"""Whole-image segmentation from patches: MONAI's sliding-window inference, with flip TTA.

A network trained on patches predicts overlapping patches of the whole image; the softmax
probabilities of the patches are blended (a Gaussian weighting trusts patch centres more than
their borders, as nnU-Net does). Test-time augmentation by flipping repeats this for every
combination of flipped spatial axes (nnU-Net's mirroring: 4 passes in 2D, 8 in 3D), flips each
result back and averages the probabilities.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from medlens.errors import ConfigError, InputError
from medlens.models.segmenter import check_input_size

BLEND_MODES = ("gaussian", "constant")


def sliding_window_predict(
    model: nn.Module,
    image: torch.Tensor,
    roi_size: int | Sequence[int],
    overlap: float = 0.5,
    mode: str = "gaussian",
    sw_batch_size: int = 4,
    tta_flip: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Softmax probabilities of ``model`` over a whole image, patch by patch.

    The model runs in evaluation mode under ``torch.no_grad`` (its training mode is restored
    afterwards). Images smaller than ``roi_size`` along an axis are zero-padded to it and the
    result cropped back, so any image size works.

    Args:
        model: a segmenter: ``(B, C, *roi_size)`` -> logits ``(B, K, *roi_size)``.
        image: ``(C, *spatial)`` or ``(N, C, *spatial)``, already preprocessed.
        roi_size: the patch size in voxels, one number per spatial axis (or one for all);
            each must be a multiple of ``model.size_divisor``.
        overlap: fraction of a patch shared with its neighbour along each axis, in [0, 1).
        mode: ``"gaussian"`` (weights fall off towards patch borders) or ``"constant"``
            (plain average) blending of overlapping patches.
        sw_batch_size: patches per forward pass.
        tta_flip: average over all combinations of flipped spatial axes (2^D passes).
        device: where the model runs and the result is stitched; by default the device of
            the model's parameters. The model is not moved.

    Returns:
        ``(N, K, *spatial)`` float32 probabilities summing to 1 over ``K`` (``N`` = 1 for an
        unbatched image), on ``device``.

    Raises:
        ConfigError: a patch size the model cannot read, or a bad overlap, mode or batch size.
        InputError: an image with the wrong number of axes or channels.

    Example:
        >>> from medlens.models import create_model
        >>> model = create_model("unet", num_classes=2)
        >>> sliding_window_predict(model, torch.zeros(1, 50, 70), roi_size=32).shape
        torch.Size([1, 2, 50, 70])
    """
    from monai.inferers import sliding_window_inference

    roi = _roi_size(model, roi_size, image)
    _check_options(overlap, mode, sw_batch_size)
    if hasattr(image, "as_tensor"):  # a MONAI MetaTensor: its metadata plays no part here
        image = image.as_tensor()
    batch = image.unsqueeze(0) if image.ndim == len(roi) + 1 else image
    check_input_size(model, (*batch.shape[:2], *roi), source="image")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = batch.to(device=device, dtype=torch.float32)

    def predictor(patches: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(patches), dim=1)

    spatial_axes = range(2, batch.ndim)
    flips = [()] if not tta_flip else _axis_subsets(spatial_axes)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            total: torch.Tensor | None = None
            for axes in flips:
                flipped = batch.flip(axes) if axes else batch
                probs = sliding_window_inference(
                    flipped,
                    roi_size=roi,
                    sw_batch_size=sw_batch_size,
                    predictor=predictor,
                    overlap=overlap,
                    mode=mode,
                    sw_device=device,
                    device=device,
                )
                assert isinstance(probs, torch.Tensor)
                probs = probs.flip(axes) if axes else probs
                total = probs if total is None else total + probs
    finally:
        model.train(was_training)
    assert total is not None
    return (total / len(flips)).float()


def _axis_subsets(axes: range) -> list[tuple[int, ...]]:
    """Every subset of ``axes``, the empty one (no flip) first."""
    return [s for k in range(len(axes) + 1) for s in itertools.combinations(axes, k)]


def _roi_size(
    model: nn.Module, roi_size: int | Sequence[int], image: torch.Tensor
) -> tuple[int, ...]:
    spatial_dims = getattr(model, "spatial_dims", None)
    if isinstance(roi_size, int):
        if spatial_dims is None:
            raise ConfigError(
                "segmentation.patch_size",
                "give one patch side per spatial axis: the model does not say how many it has",
            )
        roi: tuple[int, ...] = (roi_size,) * spatial_dims
    else:
        roi = tuple(int(s) for s in roi_size)
    if spatial_dims is not None and len(roi) != spatial_dims:
        raise ConfigError(
            "segmentation.patch_size",
            f"the model is {spatial_dims}D, the patch size {roi} has {len(roi)} sides",
        )
    if image.ndim not in (len(roi) + 1, len(roi) + 2):
        raise InputError(
            "image",
            f"expected (C, *spatial) or (N, C, *spatial) with {len(roi)} spatial axes, got "
            f"shape {tuple(image.shape)}",
        )
    divisor = int(getattr(model, "size_divisor", 1))
    if any(s < 1 or s % divisor for s in roi):
        raise ConfigError(
            "segmentation.patch_size",
            f"every patch side must be a positive multiple of {divisor} voxels (the model's "
            f"size divisor), got {roi}",
        )
    return roi


def _check_options(overlap: float, mode: str, sw_batch_size: int) -> None:
    if not 0 <= overlap < 1:
        raise ConfigError("segmentation.overlap", f"must be in [0, 1), got {overlap}")
    if mode not in BLEND_MODES:
        raise ConfigError("mode", f"must be one of {', '.join(BLEND_MODES)}, got {mode!r}")
    if sw_batch_size < 1:
        raise ConfigError("segmentation.sw_batch_size", f"must be at least 1, got {sw_batch_size}")
