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
    """Read a medlens checkpoint (a dict with at least ``"model"``) on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        raise InputError(path, f"not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(path, "not a medlens checkpoint (no 'model' entry)")
    return state
