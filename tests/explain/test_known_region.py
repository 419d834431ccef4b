"""Models whose evidence lies in a known region: the maps must put their mass there."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from medlens.explain import explain

EXACT = ["gradcam", "gradcam++", "saliency", "smoothgrad", "integrated-gradients"]


def _mass_inside(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return maps[:, mask].sum(axis=1) / maps.reshape(len(maps), -1).sum(axis=1)


@pytest.mark.parametrize("task_name", ["region_task_2d", "region_task_3d"])
@pytest.mark.parametrize("method", EXACT)
def test_a_region_only_model_gets_all_the_mass_in_its_region(
    method: str, task_name: str, request: pytest.FixtureRequest
) -> None:
    """Nothing outside the region reaches the logits, so CAMs and gradients are zero there
    (up to the CAM's upsampling at the border: here the CAM layer is at full resolution)."""
    task = request.getfixturevalue(task_name)
    maps = explain(task.model, task.images, 1, method)
    assert _mass_inside(maps, task.mask).min() > 0.99
    peaks = [np.unravel_index(m.argmax(), m.shape) for m in maps]
    assert all(task.mask[p] for p in peaks)


@pytest.mark.parametrize("task_name", ["region_task_2d", "region_task_3d"])
def test_occlusion_mass_stays_within_a_window_of_the_region(
    task_name: str, request: pytest.FixtureRequest
) -> None:
    """A window overlapping the region spreads its score over its whole area, so the mass
    lies in the region grown by the window (4 px) less one, and most densely in the region."""
    task = request.getfixturevalue(task_name)
    maps = explain(task.model, task.images, 1, "occlusion", window=4)
    grown = binary_dilation(task.mask, np.ones((3,) * task.mask.ndim), iterations=3)
    assert _mass_inside(maps, grown).min() > 0.99
    assert _mass_inside(maps, task.mask).min() > 2 * task.mask.sum() / grown.sum()


def test_a_cnn_trained_on_a_pasted_square_looks_at_the_square(square_task) -> None:
    """Real radiographs, class 1 = a 6x6 px white square (4.6% of the image): the trained
    network's CAM and gradients concentrate there several times more than chance."""
    assert square_task.accuracy > 0.9
    mask = np.zeros((28, 28), dtype=bool)
    mask[square_task.region] = True
    area = mask.mean()
    for method in ("gradcam", "saliency", "integrated-gradients", "occlusion"):
        maps = explain(square_task.model, square_task.images, 1, method)
        assert _mass_inside(maps, mask).mean() > 3 * area, method
