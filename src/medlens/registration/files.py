"""The files of a registration's output folder: their names, the NIfTI writer (images,
label maps, the displacement field with its affine) and the transform chain as JSON, read
back by ``read_chain``.

out/
  warped.nii.gz          the moving image on the fixed grid (+ warped.png for 2D images)
  warped_labels.nii.gz   --moving-labels propagated, nearest neighbour (+ .png for 2D)
  displacement.nii.gz    the deformable stage's displacement, world mm, on the fixed grid
  jacobian.nii.gz        its Jacobian determinant
  transform.json         the chain: initial alignment, rigid, affine matrices, the field
  metrics.json           folding, Jacobian statistics, similarity, TRE / Dice when given
  report.html            checkerboard and overlay figures before and after
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.registration.chain import TransformChain

WARPED = "warped.nii.gz"
WARPED_PNG = "warped.png"
WARPED_LABELS = "warped_labels.nii.gz"
WARPED_LABELS_PNG = "warped_labels.png"
DISPLACEMENT = "displacement.nii.gz"
JACOBIAN = "jacobian.nii.gz"
TRANSFORM = "transform.json"
METRICS = "metrics.json"
REPORT = "report.html"
#: NIfTI intent code of a displacement vector field (NIFTI_INTENT_DISPVECT).
INTENT_DISPLACEMENT = 1006
CONVENTION = (
    "maps a fixed-image world point x (mm) into the moving image: T(x + u(x)), with T "
    "linear_world_matrix (homogeneous, column vectors) and u the displacement field (world "
    "mm, fixed world axes, on the fixed grid; zero without a deformable stage); world: the "
    "image's own affine for 3D files that have one, else voxel index times spacing"
)


def nifti_affine(to_world: np.ndarray) -> np.ndarray:
    """A 4x4 NIfTI affine for a 2D or 3D voxel -> world matrix (2D: the third axis 1 mm)."""
    d = to_world.shape[0] - 1
    if d == 3:
        return to_world
    affine = np.eye(4)
    affine[:2, :2] = to_world[:2, :2]
    affine[:2, 3] = to_world[:2, 2]
    return affine


def write_nifti(
    path: Path, array: np.ndarray, to_world: np.ndarray, intent: int | None = None
) -> Path:
    """Write ``array`` (spatial axes first, then any vector axes) as gzipped NIfTI with the
    affine of ``to_world``, atomically."""
    import nibabel as nib

    image = nib.Nifti1Image(np.asarray(array), nifti_affine(to_world))
    if intent is not None:
        image.header.set_intent(intent)
    return write_atomic(path, gzip.compress(image.to_bytes(), compresslevel=4))


def write_displacement(path: Path, displacement_mm: np.ndarray, to_world: np.ndarray) -> Path:
    """The displacement ``(d, *spatial)`` (mm) as a NIfTI vector field ``(*spatial, 1, d)``
    (2D: ``(H, W, 1, 1, 2)``) with intent DISPVECT and the fixed image's affine."""
    vectors = np.moveaxis(displacement_mm, 0, -1)
    if vectors.ndim == 3:  # 2D: a third spatial axis of one voxel
        vectors = vectors[:, :, None]
    return write_nifti(path, vectors[..., None, :], to_world, INTENT_DISPLACEMENT)


def _grid(shape: tuple[int, ...], to_world: np.ndarray, source: str) -> dict[str, Any]:
    d = len(shape)
    return {
        "path": source,
        "shape": list(shape),
        "spacing_mm": np.linalg.norm(to_world[:d, :d], axis=0).tolist(),
        "voxel_to_world": to_world.tolist(),
    }


def chain_document(
    chain: TransformChain, fixed_source: str, moving_source: str, seconds: float
) -> dict[str, Any]:
    """The JSON document of ``chain`` (``transform.json``)."""
    stages = [
        {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in stage.items()}
        for stage in chain.stages
    ]
    for stage in stages:
        if stage["kind"] == "deformable":
            stage["field"] = DISPLACEMENT
    return {
        "convention": CONVENTION,
        "fixed": _grid(chain.fixed_shape, chain.fixed_to_world, fixed_source),
        "moving": _grid(chain.moving_shape, chain.moving_to_world, moving_source),
        "before_world_matrix": chain.initial.tolist(),
        "linear_world_matrix": chain.linear.tolist(),
        "displacement": DISPLACEMENT if chain.displacement is not None else None,
        "stages": stages,
        "seconds": seconds,
    }


def write_chain(path: Path, document: dict[str, Any]) -> Path:
    return write_json_atomic(path, document)


def read_chain(out_dir: str | Path) -> TransformChain:
    """The chain of a registration output folder (``transform.json`` and, when it has a
    deformable stage, ``displacement.nii.gz``).

    Raises:
        InputError: a missing or malformed file.
    """
    import nibabel as nib

    out_dir = Path(out_dir)
    path = out_dir / TRANSFORM
    if not path.is_file():
        raise InputError(path, "not found; is this a `medlens register` output folder?")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        fixed, moving = doc["fixed"], doc["moving"]
        chain = TransformChain(
            fixed_shape=tuple(fixed["shape"]),
            moving_shape=tuple(moving["shape"]),
            fixed_to_world=np.asarray(fixed["voxel_to_world"], dtype=np.float64),
            moving_to_world=np.asarray(moving["voxel_to_world"], dtype=np.float64),
            initial=np.asarray(doc["before_world_matrix"], dtype=np.float64),
            linear=np.asarray(doc["linear_world_matrix"], dtype=np.float64),
            stages=doc["stages"],
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"not a transform chain ({type(exc).__name__}: {exc})") from None
    if doc.get("displacement"):
        field_path = out_dir / doc["displacement"]
        if not field_path.is_file():
            raise InputError(field_path, "the chain's displacement field is missing")
        vectors = np.asarray(nib.load(field_path).dataobj, dtype=np.float32)  # type: ignore[attr-defined]
        d = chain.dims
        vectors = vectors.reshape(*chain.fixed_shape, d)  # drops the 2D and the NIfTI axes
        in_mm = np.moveaxis(vectors, -1, 0)
        to_voxels = np.linalg.inv(chain.fixed_to_world[:d, :d])
        chain.displacement = np.einsum("ij,j...->i...", to_voxels, in_mm).astype(np.float32)
    return chain
