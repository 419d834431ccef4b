"""The Jacobian determinant of a displacement field: where the deformation stretches (> 1),
shrinks (< 1) or folds (<= 0)."""

from __future__ import annotations

import numpy as np


def jacobian_determinant(displacement: np.ndarray) -> np.ndarray:
    """``det(I + grad u)`` at every voxel of the map ``x -> x + u(x)``.

    Args:
        displacement: ``(d, *spatial)`` in voxel units of the same grid (then the result is
            also the determinant in world mm for any voxel-to-world affine, whose factors
            cancel), derivatives by central differences (one-sided at the edges).

    Returns:
        ``(*spatial)`` float64.

    Example:
        >>> u = np.zeros((2, 5, 5)); u[0] = 0.5 * np.arange(5)[:, None]  # 1.5x stretch
        >>> float(jacobian_determinant(u).mean())
        1.5
    """
    d = displacement.shape[0]
    if displacement.ndim != d + 1:
        raise ValueError(f"a {d}-component field needs {d} spatial axes, got {displacement.shape}")
    jac = np.empty(displacement.shape[1:] + (d, d))
    for i in range(d):
        grads = np.gradient(displacement[i].astype(np.float64), axis=tuple(range(d)))
        for j in range(d):
            jac[..., i, j] = grads[j]
        jac[..., i, i] += 1.0
    return np.linalg.det(jac)
