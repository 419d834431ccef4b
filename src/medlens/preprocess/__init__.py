"""Preprocessing and augmentation transforms for 2D and 3D images, and their pipelines.

Transforms are registered by name in ``TRANSFORMS`` and built from config entries
``{"name": ..., **params}`` with ``build_pipeline``.
"""

from medlens.preprocess.base import RandomTransform, Transform
from medlens.preprocess.pipeline import (
    Compose,
    build_pipeline,
    build_transform,
    load_pipeline,
    save_pipeline,
)
from medlens.preprocess.registry import TRANSFORMS

__all__ = [
    "TRANSFORMS",
    "Compose",
    "RandomTransform",
    "Transform",
    "build_pipeline",
    "build_transform",
    "load_pipeline",
    "save_pipeline",
]
