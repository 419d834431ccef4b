"""Overlay PNGs: image beside overlay in 2D, three slices through the peak in 3D."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from medlens.explain import save_overlay
from medlens.explain.overlay import peak_slices


def test_2d_overlay_is_a_png_with_two_panels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = save_overlay(rng.random((1, 28, 28)), rng.random((28, 28)), tmp_path / "a.png", "x")
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[1] > pixels.shape[0]  # two panels side by side
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_3d_overlay_shows_the_slices_through_the_peak(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    volume = rng.random((1, 10, 12, 14))
    heatmap = np.zeros((10, 12, 14))
    heatmap[3, 7, 11] = 1.0
    slices = peak_slices(volume, heatmap)
    assert [title for title, _, _ in slices] == ["axis 0 = 3", "axis 1 = 7", "axis 2 = 11"]
    np.testing.assert_array_equal(slices[0][1], volume[:, 3])
    np.testing.assert_array_equal(slices[1][1], volume[:, :, 7])
    np.testing.assert_array_equal(slices[2][2], heatmap[:, :, 11])
    assert [hm.max() for _, _, hm in slices] == [1.0, 1.0, 1.0]
    two_d = matplotlib.image.imread(save_overlay(volume[:, 0], heatmap[0], tmp_path / "2d.png"))
    three_d = matplotlib.image.imread(save_overlay(volume, heatmap, tmp_path / "3d.png"))
    assert three_d.shape[1] > two_d.shape[1]  # three panels are wider than two


def test_rgb_images_and_mismatched_grids(tmp_path: Path) -> None:
    rgb = np.random.default_rng(2).random((3, 16, 16))
    assert save_overlay(rgb, np.ones((16, 16)) * 0.5, tmp_path / "rgb.png").is_file()
    with pytest.raises(ValueError, match="grids differ"):
        save_overlay(rgb, np.ones((8, 8)), tmp_path / "bad.png")
