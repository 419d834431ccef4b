"""Checks every reader applies before handing an array on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.errors import InputError


def require_finite(array: np.ndarray, source: str | Path, what: str = "pixel values") -> None:
    """Raise ``InputError`` naming ``source`` when ``array`` holds NaN or infinite values.

    Args:
        array: any numeric array; integer arrays always pass.
        source: the file (or ``file#key``) the array came from.
        what: how the message names the values (``"pixel values"``, ``"values after ..."``).
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise InputError(source, f"{bad} of {finite.size} {what} are NaN or infinite")


def as_float32(array: np.ndarray, source: str | Path) -> np.ndarray:
    """``array`` as a contiguous float32 array after checking that it is numeric and finite."""
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputError(source, f"holds {array.dtype} values, not numbers")
    if np.iscomplexobj(array):
        raise InputError(source, "holds complex values; medlens reads real-valued images")
    require_finite(array, source)
    out = np.ascontiguousarray(array, dtype=np.float32)
    require_finite(out, source, "values after conversion to float32")
    return out


def first_line(exc: BaseException) -> str:
    """The first line of a library exception's message, for an ``InputError`` reason."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
