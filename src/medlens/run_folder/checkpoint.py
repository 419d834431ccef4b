"""Checkpoints, written atomically so a kill never leaves a half-written file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from medlens.errors import InputError
from medlens.io_utils import write_atomic


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` with torch.save to a temporary file beside ``path``, then rename it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a medlens checkpoint (a dict with at least ``"model"``) on the CPU.

    Only tensors, containers and numpy values are unpickled (``weights_only``), so a run
    folder from elsewhere cannot execute code when it is loaded.
    """
    from medlens.models.init_weights import load_weights_only

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    state = load_weights_only(path)
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(path, "not a medlens checkpoint (no 'model' entry)")
    return state
