"""GLCM: hand-counted matrices, agreement with scikit-image, 3D directions, ROI handling."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import graycomatrix

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.features import handcrafted_features
from medlens.features.directions import directions
from medlens.features.texture import cooccurrence_matrix, glcm_features_from_matrix

# scikit-image's documentation example, gray levels 1..4 (0 would mean "outside the ROI").
LEVELS = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2], [2, 2, 3, 3]]) + 1

# Horizontal (0°) neighbour pairs counted by hand, left voxel -> right voxel:
# rows 1-2: (1,1) (1,2) (2,2) each; row 3: (1,3) (3,3) (3,3); row 4: (3,3) (3,4) (4,4).
HAND_0_DEGREES = np.array([[2, 2, 1, 0], [0, 2, 0, 0], [0, 0, 3, 1], [0, 0, 0, 1]])


def test_horizontal_matrix_matches_hand_count() -> None:
    matrix = cooccurrence_matrix(LEVELS, 4, symmetric=False)
    assert matrix.shape == (4, 4, 1, 4)
    np.testing.assert_array_equal(matrix[:, :, 0, 0], HAND_0_DEGREES)
    symmetric = cooccurrence_matrix(LEVELS, 4)
    np.testing.assert_array_equal(symmetric[:, :, 0, 0], HAND_0_DEGREES + HAND_0_DEGREES.T)


def test_contrast_of_the_hand_matrix() -> None:
    # 12 pairs, three off the diagonal: two at |i-j|=1, one at 2, one at 1 -> 7/12 per
    # direction of counting, unchanged by symmetrising.
    matrix = cooccurrence_matrix(LEVELS, 4)[:, :, :, :1]
    f = glcm_features_from_matrix(matrix)
    assert f["glcm_contrast"] == pytest.approx(7 / 12)
    assert f["glcm_dissimilarity"] == pytest.approx(5 / 12)
    p = (HAND_0_DEGREES + HAND_0_DEGREES.T) / 24
    assert f["glcm_asm"] == pytest.approx(np.sum(p**2))
    assert f["glcm_energy"] == pytest.approx(np.sqrt(np.sum(p**2)))
    assert f["glcm_joint_entropy"] == pytest.approx(-np.sum(p[p > 0] * np.log2(p[p > 0])))


def test_distance_one_matrices_equal_scikit_image(rng: np.random.Generator) -> None:
    levels = rng.integers(1, 9, size=(15, 17))
    ours = cooccurrence_matrix(levels, 8)[:, :, 0, :]
    # skimage's angles 0, 45, 90, 135 degrees step up the rows; symmetric pairs are the same.
    theirs = graycomatrix(levels - 1, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], 8, True)
    np.testing.assert_array_equal(ours, theirs[:, :, 0, :])


def test_distance_two_steps_two_voxels_along_each_axis_of_a_diagonal() -> None:
    levels = np.ones((5, 5), dtype=int)
    levels[0, 0], levels[2, 2], levels[1, 1] = 2, 3, 4
    matrix = cooccurrence_matrix(levels, 4, distances=(2,), symmetric=False)
    diagonal = matrix[:, :, 0, directions(2).index((1, 1))]
    assert diagonal[2 - 1, 3 - 1] == 1  # (0,0) -> (2,2)
    assert diagonal[2 - 1, 4 - 1] == 0  # (0,0) -> (1,1) is distance 1


def test_3d_in_plane_directions_of_a_single_slice_equal_the_2d_matrices(
    rng: np.random.Generator,
) -> None:
    levels = rng.integers(1, 7, size=(9, 11))
    flat = cooccurrence_matrix(levels, 6)
    volume = cooccurrence_matrix(levels[None], 6)
    offsets = directions(3)
    assert len(offsets) == 13
    for k, (dy, dx) in enumerate(directions(2)):
        np.testing.assert_array_equal(volume[..., offsets.index((0, dy, dx))], flat[..., k])
    through_plane = [i for i, o in enumerate(offsets) if o[0] != 0]
    assert volume[..., through_plane].sum() == 0


def test_pairs_leaving_the_roi_are_not_counted() -> None:
    image = Image(np.array([[[10.0, 20.0, 99.0, 10.0]]]), (1.0, 1.0))
    mask = np.array([[1, 1, 0, 1]])
    f = handcrafted_features(image, mask, bins=2, families=("glcm",))
    # Levels inside: 1, 2, -, 1 -> the only pair is (1, 2): contrast 1, no 99 involved.
    assert f["glcm_contrast"] == pytest.approx(1.0)


def test_roi_without_neighbours_is_an_input_error() -> None:
    image = Image(np.zeros((1, 5, 5)), (1.0, 1.0), source="scan.png")
    mask = np.zeros((5, 5))
    mask[2, 2] = 1
    with pytest.raises(InputError, match="scan.png.*GLCM"):
        handcrafted_features(image, mask, families=("glcm",))
