"""Transform specs as configs write them, and the preprocessing used when a config names none.

A spec is a mapping ``{"name": ..., **params}`` or any object with ``name`` and ``params``
(the run config's ``TransformSpec`` is one); this module never imports the config, so the
config schema stays at ground level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medlens.data.image import Image


@runtime_checkable
class NamedSpec(Protocol):
    """A transform named in a config, with its keyword arguments."""

    name: str

    @property
    def params(self) -> dict[str, Any]: ...


def spec_dicts(specs: Iterable[NamedSpec | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every spec as a plain ``{"name": ..., **params}`` dict, in order."""
    return [dict(s) if isinstance(s, Mapping) else {"name": s.name, **s.params} for s in specs]


def default_preprocess(sample: Image) -> list[dict[str, Any]]:
    """The intensity scaling used when a config names none, chosen from one sample image.

    Images whose values are all whole numbers in 0..255 (MedMNIST, 8-bit PNG/JPEG) are
    divided by 255, which keeps the relation between images; anything else (CT in HU,
    16-bit radiographs, MR) is clipped to its 0.5-99.5 percentiles and scaled to [0, 1] per
    image, which holds up on data of unknown range.
    """
    a = sample.array
    if a.min() >= 0 and a.max() <= 255 and np.array_equal(a, np.round(a)):
        return [{"name": "fixed_scale", "divisor": 255}]
    return [{"name": "percentile_clip", "lower": 0.5, "upper": 99.5}]


def preprocess_specs(
    configured: Iterable[NamedSpec | Mapping[str, Any]], sample: Image
) -> list[dict[str, Any]]:
    """The configured preprocessing, or ``default_preprocess(sample)`` when there is none."""
    return spec_dicts(configured) or default_preprocess(sample)
