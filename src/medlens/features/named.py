"""Building a registered scikit-learn estimator from a name and config parameters."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from medlens.errors import ConfigError
from medlens.registry import Registry


def build_named(
    registry: Registry[Callable[..., Any]],
    name: str,
    params: Mapping[str, Any],
    key: str,
    seed: int | None = None,
) -> Any:
    """``registry.get(name)(**params)``; ``seed`` is passed to builders that take one.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: keyed ``key``, naming a parameter the builder does not take.
    """
    builder = registry.get(name)
    kwargs = dict(params)
    takes_seed = "seed" in inspect.signature(builder).parameters
    if seed is not None and takes_seed and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        inspect.signature(builder).bind(**kwargs)
    except TypeError as exc:
        accepted = ", ".join(inspect.signature(builder).parameters)
        raise ConfigError(key, f"{name}: {exc}; it takes {accepted}") from None
    return builder(**kwargs)


def split_spec(spec: str | Mapping[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    """``"rfe"`` or ``{"name": "rfe", "k": 10}`` -> ``("rfe", {"k": 10})``."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        return str(spec["name"]), {k: v for k, v in spec.items() if k != "name"}
    raise ConfigError(key, f"must be a name or a mapping with a 'name' key, got {spec!r}")
