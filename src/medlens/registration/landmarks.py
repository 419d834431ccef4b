"""Landmark files: one point per line, its world coordinates in mm."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from medlens.errors import InputError


def read_landmarks(path: str | Path, dims: int) -> np.ndarray:
    """Read ``dims`` coordinates (world mm) per line from a CSV or whitespace-separated text
    file; a first line that is not numeric is a header. For 2D images (no affine) world mm
    is ``(row, column) * spacing``; for NIfTI the file's RAS mm, for DICOM its LPS mm.

    Returns:
        ``(N, dims)`` float64.

    Raises:
        InputError: a missing file, a line with another count of numbers, or no points.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "landmark file not found")
    rows: list[list[float]] = []
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    for number, line in enumerate(lines, start=1):
        parts = [p for p in re.split(r"[,;\s]+", line) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if number == 1:
                continue  # a header
            raise InputError(path, f"line {number} is not numeric: {line[:60]!r}") from None
        if len(values) != dims:
            raise InputError(
                path, f"line {number} has {len(values)} coordinates; the images are {dims}D"
            )
        rows.append(values)
    if not rows:
        raise InputError(path, "holds no landmarks")
    return np.asarray(rows, dtype=np.float64)
