"""The output files: the chain's JSON and displacement field read back, landmark files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlens.errors import InputError
from medlens.registration import files
from medlens.registration.chain import TransformChain
from medlens.registration.landmarks import read_landmarks
from medlens.registration.warp import displacement_mm, map_points


def _chain() -> TransformChain:
    rng = np.random.default_rng(0)
    to_world = np.array([[0, -2.0, 0, 10], [1.5, 0, 0, -3], [0, 0, 3.0, 7], [0, 0, 0, 1]])
    linear = np.eye(4)
    linear[:3, :3] += 0.05 * rng.standard_normal((3, 3))
    linear[:3, 3] = [1.0, -2.0, 0.5]
    return TransformChain(
        fixed_shape=(6, 7, 5),
        moving_shape=(8, 8, 8),
        fixed_to_world=to_world,
        moving_to_world=np.diag([1.0, 1.0, 1.0, 1.0]),
        initial=np.eye(4),
        linear=linear,
        displacement=rng.standard_normal((3, 6, 7, 5)).astype(np.float32),
        stages=[{"kind": "initial", "matrix": np.eye(4)}, {"kind": "deformable"}],
    )


def test_the_chain_and_its_field_read_back_and_map_points_alike(tmp_path: Path) -> None:
    chain = _chain()
    field = displacement_mm(chain)
    assert field is not None
    files.write_displacement(tmp_path / files.DISPLACEMENT, field, chain.fixed_to_world)
    files.write_chain(tmp_path / files.TRANSFORM, files.chain_document(chain, "f", "m", 1.0))
    back = files.read_chain(tmp_path)
    assert back.displacement is not None
    np.testing.assert_allclose(back.displacement, chain.displacement, atol=1e-5)
    points = np.array([[10.0, -2.0, 9.0], [4.0, 1.0, 12.5]])
    np.testing.assert_allclose(map_points(back, points), map_points(chain, points), atol=1e-4)


def test_a_folder_without_a_chain_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="transform.json"):
        files.read_chain(tmp_path)


def test_landmarks_read_csv_with_a_header_and_refuse_a_wrong_count(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("x,y,z\n1,2,3\n4.5, 5, -6\n")
    np.testing.assert_allclose(read_landmarks(path, 3), [[1, 2, 3], [4.5, 5, -6]])
    with pytest.raises(InputError, match="line 2 has 3 coordinates; the images are 2D"):
        read_landmarks(path, 2)
    with pytest.raises(InputError, match="not found"):
        read_landmarks(tmp_path / "missing.csv", 3)
