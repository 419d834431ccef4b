"""Run-length and size-zone matrices of the pyradiomics documentation image, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.features.directions import directions
from medlens.features.glrlm import glrlm_features, run_length_matrix
from medlens.features.glszm import glszm_features, size_zone_matrix
from medlens.features.size_matrix import size_matrix_features

# The 5x5 example of the pyradiomics documentation (GLRLM and GLSZM sections), levels 1..5.
IMAGE = np.array(
    [
        [5, 2, 5, 4, 4],
        [3, 3, 3, 1, 3],
        [2, 1, 1, 1, 3],
        [4, 2, 2, 2, 3],
        [3, 5, 3, 3, 2],
    ]
)

# Runs along the rows (0°), read off row by row: rows hold 5|2|5|44, 333|1|3, 2|111|3,
# 4|222|3, 3|5|33|2. Row i-1 = gray level i, column j-1 = run length j (up to the longest
# run, 3; pyradiomics pads to 5 columns of which the last two are zero).
GLRLM_0_DEGREES = np.array(
    [
        [1, 0, 1],
        [3, 0, 1],
        [4, 1, 1],
        [1, 1, 0],
        [3, 0, 0],
    ]
)

# Zones with 8-connectivity: level 1 one zone of 4; level 2 a single pixel and a zone of 5
# linked diagonally; level 3 zones of 1, 3 and 5; level 4 zones of 2 and 1; level 5 three
# single pixels.
GLSZM = np.array(
    [
        [0, 0, 0, 1, 0],
        [1, 0, 0, 0, 1],
        [1, 0, 1, 0, 1],
        [1, 1, 0, 0, 0],
        [3, 0, 0, 0, 0],
    ]
)


def test_run_length_matrix_along_rows_matches_hand_count() -> None:
    matrix = run_length_matrix(IMAGE, 5, (0, 1))
    np.testing.assert_array_equal(matrix, GLRLM_0_DEGREES)


def test_run_length_features_of_the_hand_matrix() -> None:
    # 17 runs over 25 pixels; by length: 12 of 1, 2 of 2, 3 of 3; by level: 2, 4, 6, 2, 3.
    f = size_matrix_features(GLRLM_0_DEGREES, 25)
    assert f["percentage"] == pytest.approx(17 / 25)
    assert f["small_emphasis"] == pytest.approx((12 + 2 / 4 + 3 / 9) / 17)
    assert f["large_emphasis"] == pytest.approx((12 + 2 * 4 + 3 * 9) / 17)
    assert f["gray_level_non_uniformity"] == pytest.approx((4 + 16 + 36 + 4 + 9) / 17)
    assert f["gray_level_non_uniformity_normalized"] == pytest.approx(69 / 17**2)
    assert f["size_non_uniformity"] == pytest.approx((144 + 4 + 9) / 17)
    assert f["low_gray_level_emphasis"] == pytest.approx(
        (2 / 1 + 4 / 4 + 6 / 9 + 2 / 16 + 3 / 25) / 17
    )
    assert f["high_gray_level_emphasis"] == pytest.approx(
        (2 * 1 + 4 * 4 + 6 * 9 + 2 * 16 + 3 * 25) / 17
    )


def test_runs_follow_their_direction_and_stop_at_the_roi_border() -> None:
    volume = np.zeros((3, 3, 7), dtype=int)
    volume[1, 1, :] = 2
    volume[1, 1, 3] = 0  # outside the ROI: splits the line into runs of 3 and 3
    along = run_length_matrix(volume, 2, (0, 0, 1))
    across = run_length_matrix(volume, 2, (1, 0, 0))
    np.testing.assert_array_equal(along[1], [0, 0, 2])
    np.testing.assert_array_equal(across[1], [6])
    diagonal = run_length_matrix(volume, 2, (0, 1, 1))
    np.testing.assert_array_equal(diagonal[1], [6])


def test_glrlm_features_average_the_directions() -> None:
    per_direction = [
        size_matrix_features(run_length_matrix(IMAGE, 5, d), 25)["percentage"]
        for d in directions(2)
    ]
    assert glrlm_features(IMAGE, 5)["glrlm_run_percentage"] == pytest.approx(np.mean(per_direction))


def test_size_zone_matrix_matches_hand_count() -> None:
    np.testing.assert_array_equal(size_zone_matrix(IMAGE, 5), GLSZM)


def test_size_zone_features_of_the_hand_matrix() -> None:
    # 11 zones over 25 pixels; sizes: six of 1, one each of 2, 3, 4, two of 5.
    f = glszm_features(IMAGE, 5)
    assert f["glszm_zone_percentage"] == pytest.approx(11 / 25)
    assert f["glszm_small_area_emphasis"] == pytest.approx(
        (6 + 1 / 4 + 1 / 9 + 1 / 16 + 2 / 25) / 11
    )
    assert f["glszm_large_area_emphasis"] == pytest.approx((6 + 4 + 9 + 16 + 2 * 25) / 11)
    assert f["glszm_size_zone_non_uniformity"] == pytest.approx((36 + 1 + 1 + 1 + 4) / 11)


def test_3d_zones_join_voxels_touching_at_a_corner() -> None:
    volume = np.zeros((2, 2, 2), dtype=int)
    volume[0, 0, 0] = volume[1, 1, 1] = 1
    np.testing.assert_array_equal(size_zone_matrix(volume, 1), [[0, 1]])
