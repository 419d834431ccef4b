"""What every annotation reader returns: images with their objects, in one coordinate rule.

Boxes are ``(x1, y1, x2, y2)`` in pixel-edge coordinates: x runs along the width, y along the
height, 0 is the left (top) edge of the first pixel and ``x2`` is the right edge of the last
pixel the object covers, so a box of one pixel at column 0 is ``(0, y, 1, y + 1)``. This is
COCO's and torchvision's rule; Pascal VOC's 1-based inclusive corners are converted on
reading (``x1 = xmin - 1``, ``x2 = xmax``, as detectron2 does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Image sizes are ``(height, width)`` in pixels.
Size = tuple[int, int]


@dataclass(frozen=True)
class AnnotatedObject:
    """One object as an annotation file states it (not yet checked).

    Attributes:
        label: the class name the file gives.
        box: ``(x1, y1, x2, y2)`` in pixel-edge coordinates (see the module docstring).
        where: how errors name it in its file (``object 3``, ``annotation id 17``, ``row 9``).
        crowd: a region to ignore when scoring (COCO ``iscrowd``, VOC ``difficult``): it is
            neither a miss nor a match, and it is left out of training.
        mask: a function of the image size ``(H, W)`` giving the object's boolean mask, for
            layouts with instance masks (decoded on demand: a whole COCO set of masks would
            not fit in memory).
        problem: what the reader already found wrong with it in its own terms (a VOC box whose
            ``xmax`` equals its ``xmin``), or None.
    """

    label: str
    box: tuple[float, float, float, float]
    where: str
    crowd: bool = False
    mask: Callable[[Size], np.ndarray] | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One image and its objects, as read from an annotation file.

    Attributes:
        case_id: unique within the source (the image's file stem or its relative path).
        image: the image file.
        annotation: the file the objects come from (an XML, a JSON, a CSV, a mask).
        objects: every object, in file order; empty for an image without objects (it still
            counts: any detection on it is a false positive).
        size: ``(height, width)`` in pixels as the annotation declares it, or None when it
            does not (the image header is read instead).
        split: ``train``, ``val`` or ``test`` when the layout has an official split.
    """

    case_id: str
    image: Path
    annotation: Path
    objects: tuple[AnnotatedObject, ...]
    size: Size | None = None
    split: str | None = None


@dataclass(frozen=True)
class BadObject:
    """An object that cannot be used, and why; listed in the run folder under ``--skip-bad``.

    Attributes:
        file: the annotation file.
        object: how the file names it (``object 3``), or ``image`` for a whole image.
        label: its class name as the file gives it.
        reason: one sentence.
    """

    file: str
    object: str
    label: str
    reason: str

    def message(self) -> str:
        """The one-line error: the file, the object and the reason."""
        label = f" ({self.label})" if self.label else ""
        return f"{self.object}{label}: {self.reason}"
