"""Segmentation losses on logits and integer label maps, with an optional field-of-view mask.

Each loss is MONAI's (``DiceLoss``, ``TverskyLoss``, ``FocalLoss``) or PyTorch's
cross-entropy, fed the softmax of the logits and the one-hot label map, so that with no mask
``dice_ce`` equals ``monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)``. The mask
(1 inside the field of view, 0 outside) takes voxels out of every term: Dice and Tversky see
zero probability and zero label there, cross-entropy and focal loss average over the voxels
inside only. What a network predicts outside the mask therefore changes neither the loss
nor its gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlens.errors import ConfigError, InputError

LOSS_NAMES = ("dice_ce", "dice", "focal", "tversky", "dice_focal")

_REGION = {"include_background", "smooth_nr", "smooth_dr", "batch"}
_DICE = _REGION | {"squared_pred", "jaccard"}
_FOCAL = {"include_background", "gamma", "alpha"}
_PARAMS: dict[str, set[str]] = {
    "dice": _DICE,
    "dice_ce": _DICE | {"lambda_dice", "lambda_ce", "label_smoothing"},
    "focal": _FOCAL,
    "tversky": _REGION | {"alpha", "beta"},
    "dice_focal": _DICE | {"gamma", "alpha", "lambda_dice", "lambda_focal"},
}
_IGNORE = -100  # PyTorch cross-entropy's ignore_index


class SegmentationLoss(nn.Module):
    """A region term (Dice or Tversky) and/or a voxel term (cross-entropy or focal), summed.

    ``forward(logits, target, mask=None)``:

    - ``logits``: ``(N, K, *spatial)``, or a list of them (deep supervision: the mean of the
      loss over the list).
    - ``target``: the integer label map, ``(N, 1, *spatial)`` or ``(N, *spatial)``, values in
      ``[0, K)``; float tensors holding whole numbers are accepted.
    - ``mask``: the field of view, same layout as ``target``, nonzero/True where voxels count.

    Build it with :func:`build_segmentation_loss`.
    """

    def __init__(
        self,
        name: str,
        num_classes: int,
        region: nn.Module | None,
        voxel: str | None,
        focal: nn.Module | None = None,
        lambda_region: float = 1.0,
        lambda_voxel: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.region = region
        self.voxel = voxel
        self.focal = focal
        self.lambda_region = lambda_region
        self.lambda_voxel = lambda_voxel
        self.label_smoothing = label_smoothing

    def forward(
        self,
        logits: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if isinstance(logits, (list, tuple)):
            return torch.stack([self(head, target, mask) for head in logits]).mean()
        assert isinstance(logits, torch.Tensor)
        labels = self._labels(logits, target)
        valid = self._valid(labels, mask)
        # float32 whatever autocast gives: Dice sums over a volume overflow float16
        onehot = F.one_hot(labels[:, 0], self.num_classes).movedim(-1, 1).float()
        total = logits.new_zeros((), dtype=torch.float32)
        if self.region is not None:
            probs = torch.softmax(logits.float(), dim=1)
            if valid is not None:
                probs, onehot_in = probs * valid, onehot * valid
            else:
                onehot_in = onehot
            total = total + self.lambda_region * self.region(probs, onehot_in)
        if self.voxel == "ce":
            total = total + self.lambda_voxel * self._cross_entropy(logits, labels, valid)
        elif self.voxel == "focal":
            assert self.focal is not None
            per_voxel = self.focal(logits, onehot)  # (N, K', *spatial)
            if valid is None:
                focal = per_voxel.mean()
            else:
                count = valid.sum() * per_voxel.shape[1]
                focal = (per_voxel * valid).sum() / count.clamp_min(1)
            total = total + self.lambda_voxel * focal
        return total

    def _cross_entropy(
        self, logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        target = labels[:, 0]
        if valid is None:
            return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        inside = valid[:, 0] > 0
        per_voxel = F.cross_entropy(
            logits,
            torch.where(inside, target, _IGNORE),
            ignore_index=_IGNORE,
            label_smoothing=self.label_smoothing,
            reduction="none",
        )  # 0 at ignored voxels
        return per_voxel.sum() / inside.sum().clamp_min(1)

    def _labels(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim < 3 or logits.shape[1] != self.num_classes:
            raise InputError(
                "logits",
                f"expected (N, {self.num_classes}, *spatial) logits, got shape "
                f"{tuple(logits.shape)}",
            )
        labels = _as_channel_map(target, logits, "target")
        if labels.is_floating_point() and bool((labels != labels.round()).any()):
            raise InputError("target", "a label map holds whole numbers; got fractional values")
        labels = labels.long()
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= self.num_classes:
            raise InputError(
                "target",
                f"labels must lie in [0, {self.num_classes - 1}] for {self.num_classes} classes, "
                f"got values from {low} to {high}",
            )
        return labels

    def _valid(self, labels: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None:
            return None
        return (_as_channel_map(mask, labels, "mask") != 0).to(torch.float32)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_classes={self.num_classes}"


def _as_channel_map(values: torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
    """``values`` as ``(N, 1, *spatial)`` matching ``like``'s batch and spatial axes."""
    expected = (like.shape[0], 1, *like.shape[2:])
    if values.ndim == like.ndim - 1:
        values = values.unsqueeze(1)
    if tuple(values.shape) != expected:
        raise InputError(
            name,
            f"expected shape {expected} (or without the channel axis) to match the logits, got "
            f"{tuple(values.shape)}",
        )
    return values


def build_segmentation_loss(name: str, num_classes: int, **params: Any) -> SegmentationLoss:
    """The segmentation loss ``name`` for softmax logits of ``num_classes`` channels.

    Args:
        name: ``dice_ce`` (Dice + cross-entropy, nnU-Net's), ``dice``, ``focal``, ``tversky``
            or ``dice_focal``. Unlike ``monai.losses.DiceFocalLoss``, whose focal term is a
            per-class sigmoid one, ``dice_focal`` uses the softmax focal loss, as ``focal``.
        num_classes: logits width, background included (2 for a binary task).
        **params: keyword arguments of the MONAI losses: ``include_background`` (Dice,
            Tversky and focal terms; cross-entropy always counts every class),
            ``smooth_nr``, ``smooth_dr``, ``batch``, ``squared_pred``, ``jaccard`` (Dice);
            ``alpha``, ``beta`` (Tversky: weights of false positives and false negatives);
            ``gamma``, ``alpha`` (focal); ``lambda_dice``, ``lambda_ce``, ``lambda_focal``
            (term weights) and ``label_smoothing`` (cross-entropy).

    Raises:
        ConfigError: an unknown name or parameter, fewer than 2 classes, or a value MONAI
            rejects.

    Example:
        >>> loss = build_segmentation_loss("dice_ce", num_classes=3)
        >>> logits, labels = torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long)
        >>> float(loss(logits, labels)) > 0
        True
    """
    from monai.losses import DiceLoss, FocalLoss, TverskyLoss

    if name not in _PARAMS:
        raise ConfigError(
            "segmentation.loss", f"unknown loss {name!r}; available: {', '.join(LOSS_NAMES)}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(
            "model.num_classes",
            f"softmax segmentation losses need at least 2 classes (background and foreground), "
            f"got {num_classes!r}",
        )
    unknown = sorted(set(params) - _PARAMS[name])
    if unknown:
        raise ConfigError(
            f"loss.{unknown[0]}",
            f"not a parameter of the {name} loss; its parameters: {', '.join(sorted(_PARAMS[name]))}",
        )
    p = dict(params)
    lambda_keys: tuple[str, ...] = ("lambda_dice", "lambda_ce", "lambda_focal")
    lambdas = {k: float(p.pop(k)) for k in lambda_keys if k in p}
    label_smoothing = float(p.pop("label_smoothing", 0.0))
    checked: dict[str, float] = {**lambdas, "label_smoothing": label_smoothing}
    for key, value in checked.items():
        if not value >= 0:
            raise ConfigError(f"loss.{key}", f"must be at least 0, got {value}")
    if label_smoothing >= 1:
        raise ConfigError("loss.label_smoothing", f"must be below 1, got {label_smoothing}")
    focal_keys = {"gamma", "alpha"} if name != "tversky" else set()
    focal_kw = {k: p.pop(k) for k in list(p) if k in focal_keys}
    include_background = p.get("include_background", True)
    try:
        region: nn.Module | None = None
        if name in ("dice", "dice_ce", "dice_focal"):
            region = DiceLoss(**p)
        elif name == "tversky":
            region = TverskyLoss(**p)
        focal = None
        if name in ("focal", "dice_focal"):
            focal = FocalLoss(
                include_background=include_background,
                use_softmax=True,
                reduction="none",
                **focal_kw,
            )
    except (TypeError, ValueError) as exc:
        raise ConfigError("loss", f"the {name} loss rejects its parameters: {exc}") from exc
    voxel = {"dice_ce": "ce", "focal": "focal", "dice_focal": "focal"}.get(name)
    return SegmentationLoss(
        name,
        num_classes,
        region=region,
        voxel=voxel,
        focal=focal,
        lambda_region=lambdas.get("lambda_dice", 1.0),
        lambda_voxel=lambdas.get("lambda_ce", lambdas.get("lambda_focal", 1.0)),
        label_smoothing=label_smoothing,
    )
