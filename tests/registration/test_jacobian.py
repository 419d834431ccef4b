"""The Jacobian determinant on analytic fields, and folding."""

from __future__ import annotations

import numpy as np

from medlens.metrics.registration import folded_percentage, jacobian_statistics
from medlens.registration.jacobian import jacobian_determinant


def test_identity_and_translation_have_determinant_one() -> None:
    field = np.full((3, 6, 7, 8), 2.5)
    np.testing.assert_allclose(jacobian_determinant(field), 1.0)


def test_a_linear_field_has_the_determinant_of_its_matrix() -> None:
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(12.0), np.arange(9.0), indexing="ij"))
    matrix = np.array([[0.2, 0.1, 0.0], [0.0, -0.3, 0.05], [0.1, 0.0, 0.4]])
    field = np.einsum("ij,j...->i...", matrix, grid)
    expected = np.linalg.det(np.eye(3) + matrix)
    np.testing.assert_allclose(jacobian_determinant(field), expected, rtol=1e-10)


def test_a_field_that_folds_is_counted() -> None:
    # u(x) = -2x on the left half, 0 on the right: det = 1 - 2 = -1 where it folds.
    field = np.zeros((2, 20, 10))
    rows = np.arange(20.0)[:, None] * np.ones((1, 10))
    field[0, :10] = -2.0 * rows[:10]
    det = jacobian_determinant(field)
    assert np.all(det[:9] == -1.0) and np.all(det[11:] == 1.0)
    assert folded_percentage(det) == 100.0 * np.count_nonzero(det <= 0) / det.size
    stats = jacobian_statistics(det)
    assert stats["folded_voxels"] == np.count_nonzero(det <= 0) and stats["min"] == -1.0
    assert folded_percentage(det, mask=det > 0) == 0.0


def test_sinusoidal_field_matches_the_analytic_determinant() -> None:
    x = np.linspace(0, 2 * np.pi, 200)
    field = np.zeros((2, 200, 5))
    field[0] = (0.5 * np.sin(x))[:, None] / (x[1] - x[0])  # in voxels: u' = 0.5 cos
    det = jacobian_determinant(field)
    np.testing.assert_allclose(det[2:-2, 2], 1 + 0.5 * np.cos(x[2:-2]), atol=1e-3)
