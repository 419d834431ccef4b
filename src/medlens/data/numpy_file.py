"""Read a single image stored as a NumPy ``.npy`` array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.data.budget import check_voxels, voxel_budget
from medlens.data.image import Image
from medlens.data.validation import as_float32, first_line
from medlens.errors import InputError


def read_npy(path: str | Path, max_voxels: int | None = None) -> Image:
    """Read ``.npy``: a 2D array ``(H, W)`` is one grey image; 3D and 4D arrays must already be
    channel-first, ``(C, H, W)`` or ``(C, D, H, W)`` (store a volume as ``(1, D, H, W)``).

    No guessing between channels and depth: the layout is the one ``Image.array`` uses.
    Spacing is 1.0 per axis. Pickled object arrays are refused. The shape in the file's header
    is checked against the voxel budget (``medlens.data.budget``) before the array is read.

    Raises:
        VoxelBudgetError: the header declares more values than the budget.
        InputError: unreadable file, object/complex dtype, wrong number of dimensions, NaN.
    """
    path = Path(path)
    limit = voxel_budget(max_voxels)
    try:
        shape = _declared_shape(path)
        if shape is not None:
            check_voxels(path, shape, limit)
        data = np.load(path, allow_pickle=False)
    except InputError:
        raise
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


def _declared_shape(path: Path) -> tuple[int, ...] | None:
    """The shape a ``.npy`` header declares, read without the data; None when the file is not
    a ``.npy`` (``np.load`` then says what it is)."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
        except ValueError:
            return None
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(handle)
    return tuple(int(d) for d in shape)
