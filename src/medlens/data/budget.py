"""The voxel budget: the most values one image may decode to, checked before decoding.

Compressed formats expand: a gzipped NIfTI, a deflated, RLE or JPEG DICOM, or a PNG can
declare far more voxels than their bytes suggest (a 65 kB ``.nii.gz`` of zeros can declare
4096^3 voxels). Every reader in ``medlens.data`` that decodes pixels reads the declared size
first (NIfTI header dimensions; DICOM Rows x Columns x NumberOfFrames x SamplesPerPixel, for
a series their sum; the PNG/JPEG/TIFF header) and calls ``check_voxels`` before decoding, so
an oversized image is refused in one ``VoxelBudgetError`` without allocating it. The CLI,
streaming and the service share this one budget.

``DEFAULT_MAX_VOXELS`` is 256 Mi (268,435,456) voxels, counted over every channel. Why this
number: a thin-slice CT series of 512 x 512 x 1024 slices (a chest-abdomen-pelvis scan at
0.6 mm) is exactly 256 Mi, and routine CT and MR series (a few hundred slices of 512 x 512
or smaller), 4D MR and fMRI (e.g. 64 x 64 x 36 x 1000), mammograms and pathology tiles (up
to about 9000 x 9000 RGB) all pass; whole-slide images do not, and are not read here. A
decoded image of that size is 1 GiB as float32 (the readers' output), so a handful of
concurrent decodes still fit in a workstation's or a service's memory. Raise it for larger
inputs (e.g. breast tomosynthesis stacks, whole-body thin-slice CT) with the environment
variable ``MEDLENS_MAX_VOXELS`` or, in the service, ``create_app(max_voxels=...)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from medlens.errors import ConfigError, InputError

MAX_VOXELS_ENV = "MEDLENS_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 256 * 2**20


class VoxelBudgetError(InputError):
    """An image whose declared size is over the voxel budget; raised before decoding.

    Attributes:
        declared: the voxels the file declares (every channel counted).
        limit: the budget it exceeds.
    """

    def __init__(self, path: str | Path, declared: int, limit: int, what: str = "") -> None:
        self.declared = int(declared)
        self.limit = int(limit)
        self.what = what
        shape = f" ({what})" if what else ""
        reason = (
            f"declares {self.declared:,} voxels{shape}, more than the limit of {self.limit:,} "
            f"voxels; refused before decoding (raise the limit with ${MAX_VOXELS_ENV} if the "
            "image is genuine)"
        )
        super().__init__(path, reason)

    def __reduce__(self) -> tuple:  # survives a worker process's pickling intact
        return (type(self), (self.path, self.declared, self.limit, self.what))


def voxel_budget(override: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The budget in force: ``override`` when given, else ``$MEDLENS_MAX_VOXELS``, else
    ``DEFAULT_MAX_VOXELS``.

    The environment variable takes an integer (``_`` separators allowed, e.g.
    ``1_073_741_824``).

    Raises:
        ConfigError: an override or environment value that is not a positive integer.
    """
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise ConfigError("max_voxels", f"must be a positive integer, not {override!r}")
        return override
    environ = os.environ if environ is None else environ
    text = environ.get(MAX_VOXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(MAX_VOXELS_ENV, f"must be a positive integer, not {text!r}")
    return value


def declared_voxels(dims: Sequence[int]) -> int:
    """The product of ``dims`` as an exact Python integer (no overflow); negative sizes are
    clamped to 0 (the reader reports them)."""
    return math.prod(max(int(d), 0) for d in dims)


def check_voxels(
    path: str | Path, dims: Sequence[int], limit: int | None = None, what: str = ""
) -> int:
    """Refuse an image that declares more voxels than the budget, before it is decoded.

    Args:
        path: the file (or folder, for a series) named in the error.
        dims: the declared sizes whose product is the voxel count (channels included).
        limit: the budget; None for ``voxel_budget()``.
        what: how the message describes the declared size (``"512 x 512 x 1024"``).

    Returns:
        The declared voxel count.

    Raises:
        VoxelBudgetError: the count is over the budget.
    """
    budget = voxel_budget(limit)
    count = declared_voxels(dims)
    if count > budget:
        raise VoxelBudgetError(path, count, budget, what or " x ".join(str(int(d)) for d in dims))
    return count
