"""Read NIfTI-1/2 volumes (``.nii``, ``.nii.gz``) with nibabel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from medlens.data.budget import check_voxels, voxel_budget
from medlens.data.image import Image
from medlens.data.validation import as_float32, first_line
from medlens.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | Path) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz`` (any case)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: str | Path, max_voxels: int | None = None) -> Image:
    """Read a NIfTI image in the file's own voxel axes (i, j, k).

    A 3D file becomes ``(1, I, J, K)``; a 4D file puts its fourth axis first as channels,
    ``(T, I, J, K)``; a 2D file becomes ``(1, I, J)``. Values are the scaled data
    (``scl_slope``/``scl_inter`` applied) as float32. ``spacing`` is the header's voxel size
    in mm (``pixdim``) and ``affine`` the voxel-to-RAS+ world matrix (mm), kept unchanged.

    Only the header is read before the voxel budget is checked (``medlens.data.budget``):
    a gzipped file declaring more voxels than ``max_voxels`` is refused without inflating it.

    Raises:
        VoxelBudgetError: the header declares more voxels than the budget.
        InputError: unreadable or truncated files, more than 4 dimensions, NaN voxels.
    """
    path = Path(path)
    limit = voxel_budget(max_voxels)
    try:
        img = nib.load(path)  # the header only; the voxels stay in the file
        if not isinstance(img, SpatialImage):
            raise InputError(path, "is not a NIfTI image")
        shape = tuple(int(d) for d in img.header.get_data_shape())
        check_voxels(path, shape, limit)
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        affine = np.asarray(img.affine, dtype=np.float64)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, zlib errors, ...
        raise InputError(path, f"cannot be read as NIfTI ({first_line(exc)})") from None
    while data.ndim > 3 and data.shape[-1] == 1:  # (I, J, K, 1) volumes are plain 3D
        data = data[..., 0]
    if data.ndim == 4:
        array = np.moveaxis(data, -1, 0)
    elif data.ndim in (2, 3):
        array = data[None]
    else:
        raise InputError(
            path, f"has {data.ndim} dimensions {data.shape}; medlens reads 2D-4D NIfTI"
        )
    spatial = array.ndim - 1
    meta = {"stored_dtype": str(data.dtype), "format": "nifti"}
    return Image(
        array=as_float32(array, path),
        spacing=tuple(zooms[:spatial]),
        affine=affine if spatial == 3 else None,
        source=str(path),
        meta=meta,
    )
