"""Linear transforms: parameters -> world matrices."""

from __future__ import annotations

import numpy as np
import torch

from medlens.registration.transforms import LinearParameters


def test_identity_parameters_give_the_identity_matrix() -> None:
    params = LinearParameters.identity(np.array([10.0, -4.0, 2.0]))
    np.testing.assert_allclose(params.matrix().numpy(), np.eye(4), atol=1e-12)


def test_a_rotation_about_the_centre_keeps_the_centre_in_place() -> None:
    centre = np.array([5.0, 7.0])
    params = LinearParameters.identity(centre)
    params.rotation = torch.tensor([np.pi / 2], dtype=torch.float64)
    matrix = params.matrix().numpy()
    np.testing.assert_allclose(matrix[:2, :2] @ centre + matrix[:2, 2], centre, atol=1e-12)
    np.testing.assert_allclose(matrix[:2, :2], [[0, -1], [1, 0]], atol=1e-12)


def test_scale_and_shear_and_translation_compose_as_documented() -> None:
    params = LinearParameters.identity(np.zeros(3), offset=np.array([1.0, 2.0, 3.0]))
    params.log_scale = torch.log(torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64))
    params.shear = torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    matrix = params.matrix().numpy()
    expected = np.diag([2.0, 1.0, 0.5]) @ np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(matrix[:3, :3], expected, atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], [1, 2, 3])
    assert params.as_dict()["translation_mm"] == [1.0, 2.0, 3.0]
