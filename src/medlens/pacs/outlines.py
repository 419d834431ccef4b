"""Outlines of detections as closed POLYLINEs in DICOM image coordinates: (0, 0) is the top
left corner of the top left pixel, each point is (column, row) = (x, y) in pixels, so the
centre of the top left pixel is (0.5, 0.5). Used by the detection SR (``sr_detection``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlens.errors import InputError


def box_outline(box: Sequence[float], rows: int, columns: int) -> np.ndarray:
    """The closed POLYLINE of a box, clipped to the image: ``(5, 2)`` (column, row) points.

    Raises:
        InputError: a box with a non-finite coordinate.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not np.isfinite([x1, y1, x2, y2]).all():
        raise InputError("detections", f"a box has a non-finite coordinate: {list(box)}")
    x1, x2 = np.clip([x1, x2], 0.0, float(columns))
    y1, y2 = np.clip([y1, y2], 0.0, float(rows))
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)


def shoelace_area(points: np.ndarray) -> float:
    """The area enclosed by a closed polygon of ``(N, 2)`` points (squared units of theirs)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def mask_outline(mask: np.ndarray) -> np.ndarray | None:
    """The closed POLYLINE around the largest connected part of a 2D boolean mask: ``(N, 2)``
    (column, row) points in the mask's pixels (see the module docstring), first point == last; None
    when the mask is empty.

    The outline is the 0.5 level line of the mask (marching squares over the pixel centres,
    diagonal neighbours connected): along a straight edge it lies on the pixel boundary,
    at each corner it cuts across, so the area it encloses is the pixel count less about
    1/8 pixel per corner. Holes are not outlined; collinear points are dropped.
    """
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(np.asarray(mask, dtype=np.float64), 1)  # every outline is closed
    contours = find_contours(padded, 0.5, fully_connected="high")
    if not contours:
        return None
    largest = max(contours, key=shoelace_area)
    largest = approximate_polygon(largest, tolerance=1e-3)
    # (row, column) in the padded array, pixel centres at integers -> (x, y), centres at +0.5
    points = np.ascontiguousarray(largest[:, ::-1] - 0.5, dtype=np.float64)
    points[-1] = points[0]
    return points
