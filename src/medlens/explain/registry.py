"""The explanation method registry: name -> ``(model, x, targets, **params) -> relevance``.

Every method takes a classifier in eval mode, a batch ``x`` of shape ``(N, C, *spatial)``
that requires grad, and the class index to explain for each case ``targets (N,)``; it
returns a non-negative relevance map ``(N, *spatial)`` on the input grid (pixels or voxels)
as a float numpy array. ``explain`` scales each map to [0, 1]; methods need not.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import torch

from medlens.registry import Registry

ExplainerFn = Callable[..., np.ndarray]

EXPLAINERS: Registry[ExplainerFn] = Registry("explanation method")


def register_explainer(name: str) -> Callable[[ExplainerFn], ExplainerFn]:
    """Register a method under ``name``; its keyword arguments become ``explain`` params.

    Example:
        >>> @register_explainer("edge")  # doctest: +SKIP
        ... def edge(model, x: torch.Tensor, targets: torch.Tensor) -> np.ndarray: ...
    """
    return EXPLAINERS.register(name)


def channel_relevance(attribution: torch.Tensor, sign: str) -> np.ndarray:
    """``(N, C, *spatial)`` attributions -> ``(N, *spatial)`` non-negative relevance.

    Args:
        attribution: per-channel attribution of each input value.
        sign: ``"positive"`` sums the channels and keeps the evidence *for* the target
            (as Grad-CAM's ReLU does); ``"absolute"`` takes the largest magnitude over the
            channels (Simonyan et al. 2014), evidence for or against.
    """
    if sign == "positive":
        relevance = attribution.sum(dim=1).clamp(min=0)
    elif sign == "absolute":
        relevance = attribution.abs().amax(dim=1)
    else:
        from medlens.errors import ConfigError

        raise ConfigError("explain.sign", f"must be 'positive' or 'absolute', got {sign!r}")
    return relevance.detach().float().cpu().numpy()


def _populate() -> None:
    # Importing the method modules registers them.
    for module in ("cam", "attribution"):
        importlib.import_module(f"medlens.explain.{module}")


_populate()
