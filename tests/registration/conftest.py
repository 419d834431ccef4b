"""Fixtures of the registration tests: a 2D slice and a small 3D volume of the MNI152
template (see ``mni.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from .mni import mni


@pytest.fixture(scope="session")
def mni_slice() -> tuple[np.ndarray, np.ndarray]:
    """An axial slice of the T1 template at 4 mm (50 x 58 voxels), in [0, 1], and its
    grey-matter labels (probability > 0.5)."""
    t1, grey, _ = mni()
    image = ndimage.zoom(t1[:, :, 45], 0.5, order=1)
    labels = ndimage.zoom(grey[:, :, 45], 0.5, order=1) > 0.5
    return (image / image.max()).astype(np.float32), labels.astype(np.uint8)


@pytest.fixture(scope="session")
def mni_volume() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The T1 template at 6 mm (33 x 39 x 32 voxels), in [0, 1], its grey-matter labels and
    its NIfTI affine (RAS mm)."""
    t1, grey, affine = mni()
    image = ndimage.zoom(t1, 1 / 3, order=1)
    labels = ndimage.zoom(grey, 1 / 3, order=1) > 0.5
    scaled = affine.copy()
    scaled[:3, :3] *= 3
    return (image / image.max()).astype(np.float32), labels.astype(np.uint8), scaled
