"""``register_images`` on real images with a known answer: an identity pair, a translation,
a rotation (2D and 3D), and the chain applied to images, labels and points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medlens.config import RegistrationConfig
from medlens.registration import register_images
from medlens.registration.geometry import apply_matrix
from medlens.registration.warp import map_points, warp_array

from .mni import as_image

RIGID = RegistrationConfig(
    stages=["rigid"],
    init="geometry",
    levels=[2, 1],
    linear_iterations=[120, 80],
    deformable_iterations=[0, 0],
)
FAST = RegistrationConfig(levels=[2, 1], linear_iterations=[60, 30], deformable_iterations=[40, 20])


def _points(shape: tuple[int, ...], margin: int = 6) -> np.ndarray:
    axes = [np.linspace(margin, n - 1 - margin, 5) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape))


def test_an_identical_pair_gives_a_zero_field(mni_slice) -> None:
    """Within the optimiser's noise (Adam moves each voxel by about its step size until the
    step has decayed): a tenth of a voxel on average."""
    image = as_image(mni_slice[0])
    config = FAST.model_copy(update={"stages": ["deformable"]})
    chain = register_images(image, image, config).chain
    assert chain.displacement is not None
    size = np.linalg.norm(chain.displacement, axis=0)
    assert size.mean() < 0.2 and size.max() < 0.5  # voxels


def test_an_identical_pair_maps_every_point_onto_itself(mni_slice) -> None:
    image = as_image(mni_slice[0])
    chain = register_images(image, image, FAST).chain
    points = _points(image.spatial_shape)
    assert np.linalg.norm(map_points(chain, points) - points, axis=1).mean() < 0.15
    warped = warp_array(chain, image.array)
    assert np.abs(warped - image.array)[:, 5:-5, 5:-5].mean() < 0.01


def test_a_known_translation_is_recovered_to_a_fraction_of_a_voxel(mni_slice) -> None:
    shift = np.array([2.6, -1.7])
    fixed = as_image(mni_slice[0], source="fixed")
    moving = as_image(ndimage.shift(mni_slice[0], shift, order=3), source="moving")
    chain = register_images(fixed, moving, RIGID).chain
    points = _points(fixed.spatial_shape)
    error = np.linalg.norm(map_points(chain, points) - (points + shift), axis=1)
    assert error.max() < 0.3


def test_a_known_rotation_is_recovered_to_a_fraction_of_a_voxel(mni_slice) -> None:
    angle = np.deg2rad(7.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = (np.array(mni_slice[0].shape) - 1) / 2
    inverse = rotation.T
    moved = ndimage.affine_transform(
        mni_slice[0], inverse, offset=centre - inverse @ centre, order=3
    )
    fixed, moving = as_image(mni_slice[0]), as_image(moved)
    chain = register_images(fixed, moving, RIGID).chain
    points = _points(fixed.spatial_shape)
    expected = (points - centre) @ rotation.T + centre
    assert np.linalg.norm(map_points(chain, points) - expected, axis=1).max() < 0.3


def test_a_3d_translation_in_world_mm_is_recovered(mni_volume) -> None:
    volume, _, affine = mni_volume
    shift_voxels = np.array([1.3, -0.8, 0.6])
    fixed = as_image(volume, 6.0, affine, "fixed.nii.gz")
    moving = as_image(ndimage.shift(volume, shift_voxels, order=3), 6.0, affine, "moving.nii.gz")
    config = RIGID.model_copy(
        update={"levels": [1], "linear_iterations": [150], "deformable_iterations": [0]}
    )
    chain = register_images(fixed, moving, config).chain
    points = apply_matrix(affine, _points(fixed.spatial_shape, 4))
    expected = points + affine[:3, :3] @ shift_voxels
    assert np.linalg.norm(map_points(chain, points) - expected, axis=1).max() < 0.3 * 6.0


def test_labels_are_warped_by_nearest_neighbour_and_stay_labels(mni_slice) -> None:
    image, labels = mni_slice
    moving = as_image(ndimage.shift(image, (2.0, 1.0), order=1))
    chain = register_images(as_image(image), moving, FAST).chain
    warped = warp_array(chain, ndimage.shift(labels, (2.0, 1.0), order=0)[None], nearest=True)
    assert set(np.unique(warped)) <= {0, 1}
    assert warped.dtype == labels.dtype


@pytest.mark.parametrize("diffeomorphic", [False, True])
def test_the_deformable_stage_improves_a_smoothly_deformed_pair(mni_slice, diffeomorphic) -> None:
    image = mni_slice[0]
    rng = np.random.default_rng(5)
    coarse = rng.standard_normal((2, 4, 4))
    field = np.stack([ndimage.zoom(c, np.array(image.shape) / 4, order=3) for c in coarse]) * 1.5
    grid = np.mgrid[: image.shape[0], : image.shape[1]].astype(float)
    moved = ndimage.map_coordinates(image, grid + field, order=3)
    config = FAST.model_copy(
        update={
            "stages": ["deformable"],
            "diffeomorphic": diffeomorphic,
            "deformable_iterations": [80, 40],
        }
    )
    result = register_images(as_image(image), as_image(moved), config)
    warped = warp_array(result.chain, moved[None])[0]
    before = np.abs(moved - image)[4:-4, 4:-4].mean()
    after = np.abs(warped - image)[4:-4, 4:-4].mean()
    assert after < 0.5 * before
