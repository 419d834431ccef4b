"""``explain``: one call from a classifier and a batch to heatmaps in [0, 1], any method."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medlens.errors import ConfigError
from medlens.explain.registry import EXPLAINERS


def explain(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | None = None,
    method: str = "gradcam",
    **params: Any,
) -> np.ndarray:
    """Heatmaps of what drives ``model``'s score for ``target``, one per image.

    The model is put in eval mode for the call (and put back as it was); its weights are
    not changed. For CAM methods the layer is ``model.target_layer``.

    Args:
        model: a medlens ``Classifier`` (or any module with logits ``(N, K)``).
        x: a preprocessed batch ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        target: the class index to explain; a sequence gives one per image; ``None`` explains
            each image's highest-scoring class.
        method: a name of ``EXPLAINERS`` (``gradcam``, ``gradcam++``, ``saliency``,
            ``smoothgrad``, ``integrated-gradients``, ``occlusion``).
        **params: the method's own keyword arguments (``n_samples``, ``window``, ...).

    Returns:
        float32 ``(N, *spatial)`` on the input grid, each map scaled to [0, 1] by its
        minimum and maximum (a constant map, e.g. no positive evidence, is all zeros).

    Raises:
        UnknownNameError: ``method`` is not registered.
        ConfigError: a parameter the method does not take, or a target outside the classes.

    Example:
        >>> from medlens.models import create_model
        >>> model = create_model("small_cnn", num_classes=2)
        >>> explain(model, torch.rand(1, 1, 28, 28), target=1).shape
        (1, 28, 28)
    """
    fn = EXPLAINERS.get(method)
    _check_params(method, fn, params)
    if x.ndim not in (4, 5):
        raise ValueError(f"x must be (N, C, H, W) or (N, C, D, H, W), got {tuple(x.shape)}")
    device = next(model.parameters()).device
    x = x.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            targets = resolve_targets(model, x, target)
            maps = fn(model, x, targets, **params)
    finally:
        model.train(was_training)
    if maps.shape != (x.shape[0],) + tuple(x.shape[2:]):
        raise RuntimeError(f"{method} returned {maps.shape} for an input of {tuple(x.shape)}")
    return scale_to_unit(maps)


def resolve_targets(
    model: torch.nn.Module, x: torch.Tensor, target: int | Sequence[int] | None
) -> torch.Tensor:
    """The class index for each image ``(N,)``: the given one(s), or the argmax of the logits."""
    with torch.no_grad():
        logits = model(x)
    n, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    values = [int(target)] * n if isinstance(target, int | np.integer) else [int(t) for t in target]
    if len(values) != n:
        raise ConfigError("explain.target", f"{len(values)} targets for {n} images")
    bad = [t for t in values if not 0 <= t < num_classes]
    if bad:
        raise ConfigError("explain.target", f"class {bad[0]} is outside 0..{num_classes - 1}")
    return torch.as_tensor(values, dtype=torch.long, device=x.device)


def scale_to_unit(maps: np.ndarray) -> np.ndarray:
    """Each map ``(N, *spatial)`` scaled to [0, 1] by its own min and max; constant -> 0."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0)
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (maps - low) / safe, 0.0).astype(np.float32)


def _check_params(method: str, fn: Any, params: dict[str, Any]) -> None:
    accepted = list(inspect.signature(fn).parameters)[3:]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ConfigError(f"explain.{unknown[0]}", f"{method} takes {takes}")
