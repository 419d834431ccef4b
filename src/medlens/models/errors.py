"""The error raised when pretrained weights cannot be had."""

from __future__ import annotations

from medlens.errors import InputError


class ModelWeightsError(InputError):
    """Pretrained weights that are missing from the local cache or cannot be read.

    ``path`` is the cache file or folder where the weights are expected, so the message says
    exactly what to put where.
    """
