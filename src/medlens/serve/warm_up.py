"""The start-up check of a served network: one forward pass on a blank input, and its output
finite. A network with broken weights (NaN or infinite outputs) then stops the service from
starting, naming its weights file, instead of failing every request later."""

from __future__ import annotations

from pathlib import Path

import torch

from medlens.errors import InputError
from medlens.inference.loaded_run import LoadedRun
from medlens.inference.onnx import example_shape


def warm_up(run: LoadedRun, weights: Path) -> None:
    """One forward pass of ``run.model`` on a blank input of the training images' shape, so
    that a broken engine or broken weights fail at start-up, not on every request.

    Args:
        run: the run, its ``model`` the engine's network.
        weights: the file the network was read from (``model.pt``, or the ONNX file), named
            by the error.

    Raises:
        InputError: naming ``weights``, when the network gives NaN or infinite outputs.
    """
    with torch.no_grad():
        out = run.model(torch.zeros(1, *example_shape(run), device=run.device))
    tensors = list(out.values()) if isinstance(out, dict) else out
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if not all(bool(torch.isfinite(t).all()) for t in tensors if isinstance(t, torch.Tensor)):
        raise InputError(
            weights,
            "the network gives non-finite outputs (NaN or inf) for a blank input at start-up: "
            "its weights are broken; retrain the run or restore its weights, then serve it again",
        )
