"""The checks every object passes before it is used: a known class, a finite box of
positive size, inside its image."""

from __future__ import annotations

import math

from medlens.data.boxes.records import AnnotatedObject, BadObject, ImageRecord, Size

#: A box may stick out of its image by this much (pixels) before it counts as outside: room
#: for rounding in files that store fractions.
EDGE_TOLERANCE = 1e-6


def object_problem(obj: AnnotatedObject, size: Size, class_names: list[str]) -> str | None:
    """Why ``obj`` cannot be used on an image of ``size`` (height, width), or None."""
    if obj.label not in class_names:
        return f"unknown label {obj.label!r} (the classes are {', '.join(class_names)})"
    if obj.problem is not None:
        return obj.problem
    x1, y1, x2, y2 = obj.box
    if not all(math.isfinite(v) for v in obj.box):
        return "the box has a corner that is missing or not a number"
    if x2 <= x1 or y2 <= y1:
        return f"the box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has zero or negative size"
    height, width = size
    tol = EDGE_TOLERANCE
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        return (
            f"the box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) leaves the image of {width} x {height} "
            "pixels"
        )
    return None


def bad_objects(record: ImageRecord, size: Size, class_names: list[str]) -> list[BadObject]:
    """Every unusable object of ``record``, in file order."""
    out = []
    for obj in record.objects:
        reason = object_problem(obj, size, class_names)
        if reason is not None:
            out.append(BadObject(str(record.annotation), obj.where, obj.label, reason))
    return out
