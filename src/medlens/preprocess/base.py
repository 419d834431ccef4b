"""Transform contracts.

A ``Transform`` is deterministic: ``Image -> Image``, and ``to_config()`` returns the
``{"name": ..., **params}`` mapping that rebuilds it. A ``RandomTransform`` draws its
parameters from a ``numpy.random.Generator`` and hands them to a deterministic twin
(``RandomGamma`` -> ``Gamma(gamma=...)``), so what was drawn is recorded and can be replayed.

Segmentation applies a transform to an image and its label mask together
(``medlens.preprocess.joint.apply_joint``): ``fixed_for(image)`` settles every choice that
depends on the image's content, and ``for_mask()`` of the result is what runs on the mask.
Detection moves boxes alike (``medlens.preprocess.boxes.apply_with_boxes``): ``map_points``
says where points of the input lie on the output, ``unmap_points`` maps them back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from medlens.data.image import Image


class Transform(ABC):
    """Deterministic transform. Subclasses set ``name`` and implement ``apply``."""

    name: ClassVar[str] = ""

    @abstractmethod
    def apply(self, image: Image) -> Image:
        """The transformed image (a new object; the input is never mutated)."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this transform."""
        return {}

    def for_mask(self) -> Transform | None:
        """The twin that moves a label mask (or ROI) exactly as this transform moves the image.

        ``None`` (the default) means the mask is left as it is: intensity, photometric and
        enhancement transforms change values, not where anatomy lies. Transforms that change
        the grid or move content return a twin with nearest-neighbour interpolation
        (``order=0``) and constant-0 padding, so a mask keeps its labels and its grid matches
        the image's.
        """
        return None

    def fixed_for(self, image: Image) -> Transform:
        """This transform with every choice that depends on ``image``'s content made.

        A transform whose geometry comes from the image (a crop to the bounding box of its
        non-zero voxels, say) returns the plain geometric transform it amounts to for this
        image (``Crop(start=..., size=...)``), so the mask gets the image's geometry rather
        than its own. The default returns ``self``: the geometry depends on the grid alone.
        """
        return self

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        """Where points of ``image`` lie after this transform (what moves boxes with pixels).

        Points are ``(N, spatial_dims)`` coordinates along the image's spatial axes, in voxel
        edges: voxel ``i`` spans ``[i, i + 1)``, so 0 is the outer edge of the first voxel.
        Transforms that move no content (no ``for_mask()`` twin) leave them as they are;
        spatial transforms override this, and ``unmap_points`` with its inverse.

        Args:
            points: ``(N, spatial_dims)`` coordinates on ``image``'s grid.
            image: the input of the transform (its grid decides the mapping).

        Returns:
            ``(N, spatial_dims)`` float64 coordinates on the output's grid.
        """
        if self.for_mask() is None:
            return np.array(points, dtype=np.float64)
        raise NotImplementedError(f"transform {self.name!r} moves content but not points")

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        """The inverse of ``map_points``: points on the output grid back onto the grid of
        ``image`` (the transform's input), e.g. predicted boxes back to the original image."""
        if self.for_mask() is None:
            return np.array(points, dtype=np.float64)
        raise NotImplementedError(f"transform {self.name!r} cannot map points back")

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __call__(self, image: Image) -> Image:
        out = self.apply(image)
        # A fresh list: the output must never share (and so mutate) the input's history.
        out.meta["history"] = [*image.meta.get("history", []), self.to_config()]
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class RandomTransform(ABC):
    """Random transform: ``draw`` returns the deterministic twin with the drawn parameters."""

    name: ClassVar[str] = ""

    @abstractmethod
    def draw(self, rng: np.random.Generator, image: Image) -> Transform:
        """The deterministic transform with parameters drawn from ``rng`` for ``image``."""

    def params(self) -> dict[str, Any]:
        return {}

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __call__(self, image: Image, rng: np.random.Generator) -> Image:
        return self.draw(rng, image)(image)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
