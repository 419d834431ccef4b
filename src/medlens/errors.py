"""The errors medlens raises for bad input. The CLI prints their message and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class MedlensError(Exception):
    """Base class: a problem the user can fix, reported in one line without a traceback."""

    exit_code: int = 2


class InputError(MedlensError):
    """A file that cannot be used: corrupt, truncated, unsupported, wrong shape, NaNs, ...

    Args:
        path: the offending file (or ``file#key`` for an entry inside a container).
        reason: one sentence saying what is wrong.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple:  # survives a DataLoader worker's pickling intact
        return (type(self), (self.path, self.reason))


class ConfigError(MedlensError):
    """A malformed or inconsistent config value.

    Args:
        key: dotted path of the config key (``train.lr``, ``preprocess[2].name``).
        reason: one sentence saying what is wrong.
        source: the config file, when there is one.
    """

    def __init__(self, key: str, reason: str, source: str | Path | None = None) -> None:
        self.key = key
        self.reason = reason
        self.source = str(source) if source is not None else None
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}{key}: {reason}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.key, self.reason, self.source))


class UnknownNameError(MedlensError, KeyError):
    """A name missing from a registry (model, transform, metric)."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = available
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(sorted(available))}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])
