"""One registry class, used once per kind of thing (models, transforms, metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from medlens.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object map with a decorator for registration.

    Example:
        >>> MODELS: Registry[Callable] = Registry("model")
        >>> @MODELS.register("tiny")
        ... def tiny(): ...
        >>> MODELS.get("tiny") is tiny
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = name or getattr(obj, "__name__", None)
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {obj!r}")
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    @contextmanager
    def replaced(self, name: str, obj: T) -> Iterator[T]:
        """Stand ``obj`` in for the registered ``name`` inside the ``with`` block, then put
        the original back, also on an error (a benchmark's arm that changes one entry).

        Raises:
            UnknownNameError: ``name`` is not registered; nothing is replaced.
        """
        original = self.get(name)
        self._items[name] = obj
        try:
            yield obj
        finally:
            self._items[name] = original
