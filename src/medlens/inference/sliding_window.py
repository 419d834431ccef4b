"""Whole-image segmentation from patches, stitched slab by slab in little memory.

A network trained on patches predicts overlapping patches of the whole image; the softmax
probabilities of the patches are blended with a Gaussian weighting that trusts patch centres
more than their borders (nnU-Net's), on MONAI's patch grid (``dense_patch_slices``) and
importance map (``compute_importance_map``), so the result equals MONAI's
``sliding_window_inference`` to float rounding. Test-time augmentation by flipping averages,
for every patch, the predictions of every combination of flipped spatial axes, each flipped
back (nnU-Net's mirroring: 4 passes in 2D, 8 in 3D).

Memory: MONAI keeps a float32 sum and a float32 weight map of the whole (padded) image, and
a flip pass needs a flipped copy of the image and of its result. Here the patches are taken
in order along the first spatial axis, and only a slab one patch deep is summed in float32;
each slab is normalised and written into the output (float32, or float16 when asked) as soon
as no later patch can reach it. At 256^3 voxels with two classes that is about a third of
MONAI's peak (``benchmarks/sliding_window.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from medlens.errors import ConfigError, InputError
from medlens.models.segmenter import check_input_size

BLEND_MODES = ("gaussian", "constant")
#: The Gaussian's sigma as a fraction of the patch side (MONAI's and nnU-Net's 1/8).
SIGMA_SCALE = 0.125


def sliding_window_predict(
    model: nn.Module,
    image: torch.Tensor,
    roi_size: int | Sequence[int],
    overlap: float = 0.5,
    mode: str = "gaussian",
    sw_batch_size: int = 4,
    tta_flip: bool = False,
    device: torch.device | str | None = None,
    out_dtype: torch.dtype = torch.float32,
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
        out_dtype: the result's dtype; ``torch.float16`` halves its memory (sums are kept in
            float32 until a slab is written).

    Returns:
        ``(N, K, *spatial)`` probabilities summing to 1 over ``K`` (``N`` = 1 for an
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
    return _sliding_window(
        model, image, roi_size, overlap, mode, sw_batch_size, tta_flip, device,
        _Probabilities(out_dtype),
    )  # fmt: skip


def sliding_window_labels(
    model: nn.Module,
    image: torch.Tensor,
    roi_size: int | Sequence[int],
    threshold: float = 0.5,
    overlap: float = 0.5,
    mode: str = "gaussian",
    sw_batch_size: int = 4,
    tta_flip: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The label map that ``sliding_window_predict``'s probabilities decide, made slab by
    slab so that no probability map of the whole image is ever held: one byte per voxel.

    Two classes: foreground where its probability is at least ``threshold`` (only the
    foreground's sums are kept); more classes: the arg-max. Arguments as in
    ``sliding_window_predict``.

    Returns:
        ``(N, *spatial)`` uint8 labels (at most 256 classes), on ``device``.
    """
    return _sliding_window(
        model, image, roi_size, overlap, mode, sw_batch_size, tta_flip, device,
        _Labels(threshold),
    )  # fmt: skip


class _Probabilities:
    """Slabs written as probabilities of every class, in ``dtype``."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def kept(self, num_classes: int) -> list[int]:
        return list(range(num_classes))

    def allocate(self, num_classes: int, spatial: tuple[int, ...], device: Any) -> torch.Tensor:
        return torch.empty((num_classes, *spatial), dtype=self.dtype, device=device)

    def write(self, output: torch.Tensor, rows: slice, probs: torch.Tensor) -> None:
        output[:, rows] = probs


class _Labels:
    """Slabs written as a uint8 label map (thresholded foreground, or the arg-max)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def kept(self, num_classes: int) -> list[int]:
        if num_classes > 256:
            raise ConfigError("model", f"{num_classes} classes do not fit a uint8 label map")
        return [1] if num_classes == 2 else list(range(num_classes))

    def allocate(self, num_classes: int, spatial: tuple[int, ...], device: Any) -> torch.Tensor:
        return torch.empty(spatial, dtype=torch.uint8, device=device)

    def write(self, output: torch.Tensor, rows: slice, probs: torch.Tensor) -> None:
        if probs.shape[0] == 1:  # the foreground of a two-class model
            output[rows] = probs[0] >= self.threshold
        else:
            output[rows] = probs.argmax(dim=0)


def _sliding_window(
    model: nn.Module,
    image: torch.Tensor,
    roi_size: int | Sequence[int],
    overlap: float,
    mode: str,
    sw_batch_size: int,
    tta_flip: bool,
    device: torch.device | str | None,
    result: _Probabilities | _Labels,
) -> torch.Tensor:
    from monai.data.utils import compute_importance_map

    roi = _roi_size(model, roi_size, image)
    _check_options(overlap, mode, sw_batch_size)
    if hasattr(image, "as_tensor"):  # a MONAI MetaTensor: its metadata plays no part here
        image = image.as_tensor()
    batch = image.unsqueeze(0) if image.ndim == len(roi) + 1 else image
    check_input_size(model, (*batch.shape[:2], *roi), source="image")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = batch.to(device=device, dtype=torch.float32)
    weights = compute_importance_map(
        roi, mode=mode, sigma_scale=SIGMA_SCALE, device=device, dtype=torch.float32
    )
    flips: list[tuple[int, ...]] = [()] if not tta_flip else _axis_subsets(range(2, batch.ndim))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = [
                _stitch(model, case, roi, overlap, weights, sw_batch_size, flips, result)
                for case in batch
            ]
    finally:
        model.train(was_training)
    return torch.stack(outputs) if len(outputs) > 1 else outputs[0].unsqueeze(0)


def _stitch(
    model: nn.Module,
    image: torch.Tensor,
    roi: tuple[int, ...],
    overlap: float,
    weights: torch.Tensor,
    sw_batch_size: int,
    flips: list[tuple[int, ...]],
    result: _Probabilities | _Labels,
) -> torch.Tensor:
    """The result for one ``(C, *spatial)`` image, slab by slab along the first axis.

    Only a slab one patch deep is summed: when the patches starting at one first-axis index
    are done, every row before the next start is complete, is normalised and written, and the
    slab moves on (in place: no copy of the image-sized sums exists).
    """
    from monai.data.utils import dense_patch_slices

    spatial = tuple(image.shape[1:])
    before = [max(r - n, 0) // 2 for r, n in zip(roi, spatial, strict=True)]
    pad = [
        side
        for b, r, n in reversed(list(zip(before, roi, spatial, strict=True)))
        for side in (b, max(r - n, 0) - b)
    ]
    padded = torch.nn.functional.pad(image, pad) if any(pad) else image
    size = tuple(padded.shape[1:])
    interval = [
        r if r == n else max(int(r * (1 - overlap)), 1) for r, n in zip(roi, size, strict=True)
    ]
    windows = dense_patch_slices(size, roi, interval)
    firsts = sorted({w[0].start for w in windows})
    depth = roi[0]
    total = torch.zeros((depth, *size[1:]), dtype=torch.float32, device=image.device)
    output: torch.Tensor | None = None
    sums: torch.Tensor | None = None
    kept: list[int] = []
    crop = tuple(slice(b, b + n) for b, n in zip(before[1:], spatial[1:], strict=True))
    base = 0  # the first-axis index, in padded voxels, of the slab's first row
    for i, first in enumerate(firsts):
        for chunk, probs in _predict_row(model, padded, [w for w in windows if w[0].start == first], sw_batch_size, flips):  # fmt: skip
            if sums is None:
                kept = result.kept(probs.shape[1])
                sums = torch.zeros((len(kept), depth, *size[1:]), device=image.device)
                output = result.allocate(probs.shape[1], spatial, image.device)
            probs = probs[:, kept] if len(kept) < probs.shape[1] else probs
            for window, p in zip(chunk, probs, strict=True):
                inner = (slice(first - base, first - base + depth), *window[1:])
                sums[(slice(None), *inner)].addcmul_(p, weights)
                total[inner] += weights
        assert sums is not None and output is not None
        done = (firsts[i + 1] if i + 1 < len(firsts) else size[0]) - base
        low, high = max(base - before[0], 0), min(base + done - before[0], spatial[0])
        if high > low:
            rows = slice(low - base + before[0], high - base + before[0])
            normalised = sums[(slice(None), rows, *crop)] / total[(rows, *crop)]
            result.write(output, slice(low, high), normalised)
        _shift(sums, done, dim=1)
        _shift(total, done, dim=0)
        base += done
    assert output is not None
    return output


def _shift(buffer: torch.Tensor, by: int, dim: int) -> None:
    """Move ``buffer``'s rows ``by``... along ``dim`` to the front, in place, and zero the
    rows freed at the end."""
    depth = buffer.shape[dim]
    keep = depth - by
    if keep > 0:
        source = buffer.narrow(dim, by, keep)
        # the source and target rows overlap only when the slab moves less than half its depth
        buffer.narrow(dim, 0, keep).copy_(source if keep <= by else source.clone())
    buffer.narrow(dim, max(keep, 0), min(by, depth)).zero_()


def _predict_row(
    model: nn.Module,
    padded: torch.Tensor,
    row: list[tuple[slice, ...]],
    sw_batch_size: int,
    flips: list[tuple[int, ...]],
) -> Iterator[tuple[list[tuple[slice, ...]], torch.Tensor]]:
    """Softmax probabilities ``(B, K, *roi)`` of the row's patches, ``sw_batch_size`` at a
    time, averaged over ``flips`` (axes of the patch batch, flipped and flipped back)."""
    for start in range(0, len(row), sw_batch_size):
        chunk = row[start : start + sw_batch_size]
        patches = torch.stack([padded[(slice(None), *w)] for w in chunk])
        probs = None
        for axes in flips:
            x = patches.flip(axes) if axes else patches
            p = torch.softmax(model(x).float(), dim=1)
            p = p.flip(axes) if axes else p
            probs = p if probs is None else probs + p
        assert probs is not None
        yield chunk, probs / len(flips) if len(flips) > 1 else probs


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
