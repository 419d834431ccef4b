"""Pipelines of transforms: build from config, run, and save/load as ``preprocessing.json``."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic
from medlens.preprocess.base import RandomTransform, Transform
from medlens.preprocess.joint import apply_joint
from medlens.preprocess.registry import TRANSFORMS
from medlens.preprocess.specs import NamedSpec

FILE_NAME = "preprocessing.json"
FORMAT = "medlens-preprocessing"
VERSION = 1

AnyTransform = Transform | RandomTransform


class Compose:
    """Transforms run in order; random ones draw from the ``rng`` given to the call.

    Args:
        transforms: deterministic and random transforms, in the order they run.

    Example:
        >>> pipeline = build_pipeline([{"name": "fixed_scale"}, {"name": "random_flip"}])
        >>> out = pipeline(image, rng=np.random.default_rng(0))
        >>> out.meta["history"]  # what ran, random draws included
    """

    def __init__(self, transforms: Sequence[AnyTransform]) -> None:
        for t in transforms:
            if not isinstance(t, (Transform, RandomTransform)):
                raise TypeError(f"Compose takes transforms, got {type(t).__name__}")
        self.transforms: list[AnyTransform] = list(transforms)

    @property
    def is_deterministic(self) -> bool:
        """True when no transform is random (the pipeline needs no ``rng``)."""
        return not any(isinstance(t, RandomTransform) for t in self.transforms)

    def deterministic(self) -> Compose:
        """The pipeline without its random transforms: what applies at inference."""
        return Compose([t for t in self.transforms if isinstance(t, Transform)])

    def __call__(self, image: Image, rng: np.random.Generator | None = None) -> Image:
        """Run every transform in order and return the new image (the input is untouched).

        Raises:
            ValueError: the pipeline holds random transforms and ``rng`` is None.
        """
        if rng is None and not self.is_deterministic:
            random = [t.name for t in self.transforms if isinstance(t, RandomTransform)]
            raise ValueError(f"pipeline has random transforms ({', '.join(random)}); pass rng")
        for t in self.transforms:
            image = t(image, rng) if isinstance(t, RandomTransform) else t(image)  # type: ignore[arg-type]
        return image

    def apply_joint(
        self,
        image: Image,
        mask: Image,
        roi: Image | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[Image, Image, Image | None]:
        """Run the pipeline on ``image`` and move ``mask`` and ``roi`` alike (see
        ``medlens.preprocess.joint.apply_joint``); the image comes out as ``self(image, rng)``.
        """
        return apply_joint(self.transforms, image, mask, roi, rng)

    def to_config(self) -> list[dict[str, Any]]:
        """The ``{"name": ..., **params}`` mapping of every transform, in order."""
        return [t.to_config() for t in self.transforms]

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[AnyTransform]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _spec_parts(spec: Any, key: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, Mapping) and isinstance(spec, NamedSpec):
        return spec.name, spec.params
    if not isinstance(spec, Mapping):
        raise ConfigError(key, f"must be a mapping with a 'name' key, got {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name", "every transform needs a 'name' string")
    return name, {k: v for k, v in spec.items() if k != "name"}


def build_transform(spec: Mapping[str, Any] | NamedSpec, key: str = "transform") -> AnyTransform:
    """One transform from ``{"name": ..., **params}`` or a ``NamedSpec`` (a config's
    ``TransformSpec``).

    Raises:
        ConfigError: keyed ``<key>.name`` for an unknown name, ``<key>.<param>`` or ``<key>``
            for bad parameters, with the transform's name in the reason.
    """
    name, params = _spec_parts(spec, key)
    if name not in TRANSFORMS:
        raise ConfigError(
            f"{key}.name", f"unknown transform {name!r}; available: {', '.join(TRANSFORMS.names())}"
        )
    cls = TRANSFORMS.get(name)
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise ConfigError(key, f"{name}: {exc}") from None
    try:
        return cls(**params)
    except ConfigError as exc:
        param = exc.key.rsplit(".", 1)[-1]
        raise ConfigError(f"{key}.{param}", f"{name}: {exc.reason}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"{name}: {exc}") from None


def build_pipeline(
    specs: Iterable[Mapping[str, Any] | NamedSpec],
    section: str = "preprocess",
    source: str | Path | None = None,
) -> Compose:
    """A ``Compose`` from config entries, in order.

    Args:
        specs: ``{"name": ..., **params}`` mappings or ``NamedSpec`` objects (a config's
            ``TransformSpec``).
        section: the config list they come from, used in error keys (``preprocess[2].name``).
        source: the file they were read from, for error messages.

    Raises:
        ConfigError: naming the entry (``section[i].name`` or ``section[i].param``) and why.
    """
    transforms = []
    for i, spec in enumerate(specs):
        try:
            transforms.append(build_transform(spec, key=f"{section}[{i}]"))
        except ConfigError as exc:
            raise ConfigError(exc.key, exc.reason, source) from None
    return Compose(transforms)


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path / FILE_NAME if path.is_dir() else path


def save_pipeline(compose: Compose, path: str | Path) -> Path:
    """Write the deterministic part of ``compose`` as JSON, atomically (temp file + rename).

    Random transforms are augmentation and are not written: the file holds what applies at
    inference. ``path`` may be a run folder, in which case ``preprocessing.json`` is written
    inside it.

    Returns:
        The path of the written file.
    """
    path = _resolve(path)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "transforms": compose.deterministic().to_config(),
    }
    return write_atomic(path, json.dumps(document, indent=2) + "\n")


def load_pipeline(path: str | Path) -> Compose:
    """Read a pipeline written by ``save_pipeline`` (a file or a run folder holding one).

    Raises:
        InputError: the file is missing, not JSON, or not a medlens preprocessing file.
        ConfigError: an entry names an unknown transform or bad parameters.
    """
    path = _resolve(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "preprocessing file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    if isinstance(document, list):
        specs = document
    elif isinstance(document, dict) and isinstance(document.get("transforms"), list):
        version = document.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise InputError(path, f"unsupported preprocessing file version {version!r}")
        specs = document["transforms"]
    else:
        raise InputError(path, "not a medlens preprocessing file (no 'transforms' list)")
    return build_pipeline(specs, section="transforms", source=path)
