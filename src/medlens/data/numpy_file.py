"""Read a single image stored as a NumPy ``.npy`` array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.data.image import Image
from medlens.data.validation import as_float32, first_line
from medlens.errors import InputError


def read_npy(path: str | Path) -> Image:
    """Read ``.npy``: a 2D array ``(H, W)`` is one grey image; 3D and 4D arrays must already be
    channel-first, ``(C, H, W)`` or ``(C, D, H, W)`` (store a volume as ``(1, D, H, W)``).

    No guessing between channels and depth: the layout is the one ``Image.array`` uses.
    Spacing is 1.0 per axis. Pickled object arrays are refused.

    Raises:
        InputError: unreadable file, object/complex dtype, wrong number of dimensions, NaN.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except Exception as exc:  # ValueError (pickled/corrupt), OSError, EOFError
        raise InputError(path, f"cannot be read as a .npy array ({first_line(exc)})") from None
    if not isinstance(data, np.ndarray):
        raise InputError(path, "is an archive of several arrays, not one image (.npz?)")
    if data.ndim == 2:
        data = data[None]
    if data.ndim not in (3, 4):
        raise InputError(
            path, f"has shape {data.shape}; expected (H, W), (C, H, W) or (C, D, H, W)"
        )
    array = as_float32(data, path)
    meta = {"stored_dtype": str(data.dtype), "format": "npy"}
    return Image(array=array, spacing=(1.0,) * (array.ndim - 1), source=str(path), meta=meta)
