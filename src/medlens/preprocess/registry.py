"""The transform registry: config names -> transform classes."""

from __future__ import annotations

from medlens.registry import Registry

TRANSFORMS: Registry[type] = Registry("transform")


def _populate() -> None:
    # Importing the modules registers their transforms.
    import importlib

    for module in (
        "intensity",
        "spatial",
        "enhancement",
        "augmentation",
        "quarter_turn",
        "scaling",
    ):
        try:
            importlib.import_module(f"medlens.preprocess.{module}")
        except ModuleNotFoundError as exc:  # a module not written yet registers nothing
            if exc.name != f"medlens.preprocess.{module}":
                raise


_populate()
