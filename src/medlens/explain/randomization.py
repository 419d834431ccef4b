"""Model-randomisation sanity check (Adebayo et al. 2018): do maps depend on the weights?

A method whose maps barely change when the trained weights are replaced by random ones
explains the input (edges, intensity) rather than the model. The check re-initialises the
weights of a copy of the model, recomputes the maps for the same images and classes, and
compares them with the trained model's maps by SSIM (1 = the same map; a faithful method
scores well below 1).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from skimage.metrics import structural_similarity

from medlens.explain.heatmaps import explain, resolve_targets
from medlens.models.classifier import Classifier


def randomize_weights(modules: Iterable[torch.nn.Module], seed: int = 0) -> int:
    """Re-initialise, in place, every parameter of ``modules`` as at construction.

    Modules with ``reset_parameters`` (convolutions, linear and norm layers, which also
    reset their running statistics) use it; any other parameter is redrawn from a normal
    distribution with its own mean and standard deviation. The global torch generator is
    left as it was.

    Returns:
        The number of parameter tensors re-initialised.
    """
    modules = list(modules)
    params = {id(p): p for m in modules for p in m.parameters()}
    before = {key: p.detach().clone() for key, p in params.items()}
    devices = sorted({p.device.index or 0 for p in params.values() if p.is_cuda})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in modules:
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        for key, p in params.items():
            if torch.equal(p, before[key]) and p.numel() > 1:
                p.normal_(float(p.mean()), float(p.std()))
    return sum(not torch.equal(p, before[key]) for key, p in params.items())


def map_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two maps in [0, 1] (2D or 3D); the window shrinks to fit maps under 7 px."""
    side = min(a.shape)
    win_size = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=1.0, win_size=max(win_size, 3)))


def _mean_ssim(
    trained: np.ndarray,
    model: torch.nn.Module,
    x: torch.Tensor,
    targets: list[int],
    method: str,
    params: Mapping[str, Any],
) -> float:
    randomized = explain(model, x, targets, method, **params)
    return float(np.mean([map_similarity(a, b) for a, b in zip(trained, randomized, strict=True)]))


def randomization_check(
    model: torch.nn.Module,
    x: torch.Tensor,
    methods: Sequence[str] = ("gradcam", "saliency"),
    target: int | Sequence[int] | None = None,
    seed: int = 0,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """Mean SSIM between each method's maps from the trained and the fully randomised model.

    All weights are re-initialised at once (see ``cascading_randomization`` for the layer by
    layer version); the model itself is not changed. Maps of both models explain the same
    classes: ``target``, or the trained model's argmax.

    Args:
        model: the trained classifier.
        x: preprocessed inputs ``(N, C, *spatial)``.
        methods: names of ``EXPLAINERS``.
        target: as in ``explain``.
        seed: seeds the re-initialisation.
        method_params: per-method keyword arguments for ``explain``.

    Returns:
        method -> mean SSIM over the images.
    """
    targets = _targets(model, x, target)
    randomized = copy.deepcopy(model)
    randomize_weights(randomized.modules(), seed)
    params = method_params or {}
    return {
        method: _mean_ssim(
            explain(model, x, targets, method, **params.get(method, {})),
            randomized,
            x,
            targets,
            method,
            params.get(method, {}),
        )
        for method in methods
    }


def cascading_randomization(
    model: Classifier,
    x: torch.Tensor,
    methods: Sequence[str] = ("gradcam", "saliency"),
    target: int | Sequence[int] | None = None,
    seed: int = 0,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """SSIM as the weights are randomised from the top: the head, then the last stage, ...

    Needs a ``Classifier`` (``head`` and ``stages()``). Each step keeps the earlier steps'
    random weights, so the last row has every stage randomised.

    Returns:
        Rows ``step`` (1 = head only), ``randomized_down_to`` (the last layer randomised),
        ``method``, ``ssim`` (mean over the images).
    """
    targets = _targets(model, x, target)
    params = method_params or {}
    trained = {m: explain(model, x, targets, m, **params.get(m, {})) for m in methods}
    randomized: Classifier = copy.deepcopy(model)
    stages = randomized.stages()
    layers = [("head", randomized.head)] + [
        (f"stage {i}", stages[i]) for i in reversed(range(len(stages)))
    ]
    rows = []
    for step, (name, layer) in enumerate(layers, start=1):
        randomize_weights(layer.modules(), seed + step)
        for method in methods:
            ssim = _mean_ssim(
                trained[method], randomized, x, targets, method, params.get(method, {})
            )
            rows.append({"step": step, "randomized_down_to": name, "method": method, "ssim": ssim})
    return pd.DataFrame(rows)


def _targets(model: torch.nn.Module, x: torch.Tensor, target: Any) -> list[int]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return resolve_targets(model, x.to(device), target).cpu().tolist()
    finally:
        model.train(was_training)
