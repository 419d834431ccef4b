"""Outlines of detections in DICOM image coordinates (pacs/outlines.py)."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.errors import InputError
from medlens.pacs.outlines import box_outline, mask_outline, shoelace_area


def test_shoelace_area_of_a_known_polygon() -> None:
    square = np.array([[0, 0], [4, 0], [4, 3], [0, 3], [0, 0]], dtype=float)
    assert shoelace_area(square) == pytest.approx(12.0)
    assert shoelace_area(square[::-1]) == pytest.approx(12.0)  # either winding


def test_a_box_outline_is_closed_and_clipped_to_the_image() -> None:
    outline = box_outline((-5.0, 2.0, 10.0, 50.0), rows=40, columns=8)
    np.testing.assert_array_equal(outline[0], outline[-1])
    assert outline[:, 0].min() == 0 and outline[:, 0].max() == 8 and outline[:, 1].max() == 40
    with pytest.raises(InputError, match="non-finite"):
        box_outline((0.0, float("nan"), 1.0, 1.0), rows=4, columns=4)


def test_a_mask_outline_runs_on_pixel_edges_with_its_corners_cut() -> None:
    mask = np.zeros((32, 64), bool)
    mask[10:20, 30:50] = True  # rows 10-19, columns 30-49: edges at y 10, 20 and x 30, 50
    outline = mask_outline(mask)
    assert outline is not None
    np.testing.assert_array_equal(outline[0], outline[-1])
    corners = {(30.5, 10.0), (49.5, 10.0), (50.0, 10.5), (50.0, 19.5)}
    corners |= {(49.5, 20.0), (30.5, 20.0), (30.0, 19.5), (30.0, 10.5)}
    assert {tuple(point) for point in outline.tolist()} == corners
    assert shoelace_area(outline) == pytest.approx(200 - 4 / 8)
    full = mask_outline(np.ones((5, 7), bool))  # touching the image's edges: still inside
    assert full is not None
    assert (full.min(axis=0) == 0).all() and (full.max(axis=0) == (7, 5)).all()
    assert mask_outline(np.zeros((5, 7), bool)) is None
    two = np.zeros((40, 40), bool)
    two[2:6, 2:6] = True
    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 25) ** 2 + (xx - 25) ** 2 <= 9**2
    largest = mask_outline(two | disc)  # the largest part only
    assert largest is not None and shoelace_area(largest) == pytest.approx(disc.sum(), rel=0.03)
