"""Sampled predictions of one run, for ``medlens predict --uncertainty``: test-time
augmentation or Monte-Carlo dropout. (Ensemble members are sampled by
``medlens.inference.ensemble_run``.)

Each sample's probabilities are calibrated with the run's calibrator. From the samples come
the predictive entropy (total uncertainty) and the mutual information (the samples'
disagreement), in nats (``medlens.trust.measures``). The decision itself stays the run's
ordinary one: its threshold and refer band were chosen on single-pass probabilities.

Methods:
    tta: ten views of each input, the same every time: the image and its left-right mirror,
        each also shifted by about 5% of its size (at least 1 pixel) up, down, left and
        right (``torch.roll``).
    mc_dropout: ``MC_SAMPLES`` forward passes with the network's dropout layers active (Gal
        and Ghahramani 2016), seeded per case, so that a case gets the same samples alone, in
        a folder or in any batch size (the service and ``medlens predict`` agree); the network
        must have dropout (``model.dropout > 0``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from medlens.errors import ConfigError

UNCERTAINTY_METHODS = ("tta", "mc_dropout", "ensemble")
MC_SAMPLES = 20
MC_SEED = 0


def check_method(method: str) -> None:
    """Refuse an unknown ``--uncertainty`` value."""
    if method not in UNCERTAINTY_METHODS:
        raise ConfigError(
            "--uncertainty", f"expected {', '.join(UNCERTAINTY_METHODS)}, not {method!r}"
        )


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The network's dropout layers that drop something (p > 0)."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.dropout._DropoutNd) and float(getattr(m, "p", 0.0)) > 0
    ]


def check_mc_dropout(model: nn.Module, where: Any) -> None:
    """Refuse MC dropout for a network without active dropout.

    Raises:
        ConfigError: keyed ``--uncertainty``, naming the run.
    """
    if not hasattr(model, "modules") or not dropout_layers(model):
        raise ConfigError(
            "--uncertainty",
            f"mc_dropout needs a network with dropout, and {where} has none (trained with "
            "model.dropout: 0); retrain with model.dropout > 0, or use --uncertainty tta",
        )


@contextlib.contextmanager
def active_dropout(model: nn.Module, seed: int = MC_SEED) -> Iterator[None]:
    """Dropout layers in training mode (everything else in eval mode) and a private, seeded
    random stream; the modes and the global random state are restored on exit."""
    layers = dropout_layers(model)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in layers:
                layer.train()
            yield
    finally:
        for layer in layers:
            layer.eval()


def tta_views(spatial_shape: tuple[int, ...]) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The ten deterministic views of ``tta`` for inputs of this spatial shape."""
    step = [max(1, round(0.05 * s)) for s in spatial_shape[-2:]]
    shifts = [(0, 0), (step[0], 0), (-step[0], 0), (0, step[1]), (0, -step[1])]

    def view(flip: bool, shift: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
        def apply(x: torch.Tensor) -> torch.Tensor:
            y = torch.flip(x, dims=(-1,)) if flip else x
            return torch.roll(y, shifts=shift, dims=(-2, -1)) if any(shift) else y

        return apply

    return [view(flip, shift) for flip in (False, True) for shift in shifts]


@torch.no_grad()
def sample_probabilities(
    model: nn.Module,
    arrays: list[np.ndarray],
    method: str,
    device: torch.device,
    calibrate: Callable[[np.ndarray], np.ndarray],
    batch_size: int = 64,
    samples: int = MC_SAMPLES,
) -> np.ndarray:
    """``(S, N, K)`` calibrated probabilities of ``S`` views (``tta``) or dropout passes
    (``mc_dropout``) of preprocessed ``arrays``.

    Raises:
        ConfigError: ``mc_dropout`` on a network without dropout, or another method.
    """
    if method not in ("tta", "mc_dropout"):
        raise ConfigError("--uncertainty", f"{method} is not sampled from one network")
    if not arrays:
        return np.zeros((0, 0, 0))
    if method == "mc_dropout":
        check_mc_dropout(model, "this run's network")
        return _mc_dropout_samples(model, arrays, device, calibrate, batch_size, samples)
    out = []
    for view in tta_views(tuple(arrays[0].shape[1:])):
        parts = []
        for start in range(0, len(arrays), batch_size):
            tensor = torch.from_numpy(np.stack(arrays[start : start + batch_size]))
            logits = model(view(tensor.to(device)))
            parts.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        out.append(calibrate(np.concatenate(parts)))
    return np.stack(out)


def _mc_dropout_samples(
    model: nn.Module,
    arrays: list[np.ndarray],
    device: torch.device,
    calibrate: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
    samples: int,
) -> np.ndarray:
    """``(S, N, K)``: each case's ``S`` dropout passes are ``S`` copies of it in one batch
    (``batch_size`` copies at a time) under the same seed, so that a case's samples do not
    depend on which other cases, or how many, were passed with it."""
    out = []
    for array in arrays:
        tensor = torch.from_numpy(np.ascontiguousarray(array))[None].to(device)
        parts = []
        with active_dropout(model):
            for start in range(0, samples, batch_size):
                copies = tensor.expand(min(batch_size, samples - start), *tensor.shape[1:])
                logits = model(copies.contiguous())
                parts.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        out.append(np.concatenate(parts))  # (S, K)
    return calibrate(np.concatenate(out)).reshape(len(arrays), samples, -1).swapaxes(0, 1)
