"""Real images for the registration tests: nilearn's MNI152 template (2 mm, shipped with
the package, offline) and its grey-matter map, and small writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.data.image import Image


def mni() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The T1 template, its grey-matter probability map (2 mm) and its NIfTI affine."""
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=2)
    grey = datasets.load_mni152_gm_template(resolution=2)
    return (
        np.asarray(template.dataobj, dtype=np.float32),
        np.asarray(grey.dataobj, dtype=np.float32),
        template.affine,
    )


def as_image(
    array: np.ndarray, spacing: float = 1.0, affine: np.ndarray | None = None, source: str = "image"
) -> Image:
    """A one-channel ``Image`` of ``array``."""
    return Image(array[None].astype(np.float32), (spacing,) * array.ndim, affine, source)


def write_png(path: Path, array: np.ndarray, scale: float = 255.0) -> Path:
    """``array`` (values in [0, 1], or labels with ``scale=1``) as an 8-bit PNG."""
    from PIL import Image as PILImage

    PILImage.fromarray(np.clip(np.round(array * scale), 0, 255).astype(np.uint8)).save(path)
    return path


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """``array`` as a NIfTI file with ``affine``."""
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, affine), path)
    return path
