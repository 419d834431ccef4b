"""Transform contracts.

A ``Transform`` is deterministic: ``Image -> Image``, and ``to_config()`` returns the
``{"name": ..., **params}`` mapping that rebuilds it. A ``RandomTransform`` draws its
parameters from a ``numpy.random.Generator`` and hands them to a deterministic twin
(``RandomGamma`` -> ``Gamma(gamma=...)``), so what was drawn is recorded and can be replayed.
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
