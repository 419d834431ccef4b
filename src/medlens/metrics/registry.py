"""The classification metric registry: name -> ``(y_true, y_prob, y_pred) -> float``.

Every metric takes the true class indices ``y_true (N,)``, the predicted probabilities
``y_prob (N, K)`` and the predicted class indices ``y_pred (N,)`` (after the decision
threshold), and returns one float; ``nan`` where the metric is undefined on the given cases
(for example AUC when only one class is present).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medlens.registry import Registry

MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

METRICS: Registry[MetricFn] = Registry("metric")


def _populate() -> None:
    # Importing the modules registers their metrics.
    import importlib

    for module in ("classification", "calibration"):
        importlib.import_module(f"medlens.metrics.{module}")


_populate()
