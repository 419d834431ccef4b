"""The "refer to a human" band: the cases a model should not decide alone, chosen on
validation.

Two classes: two thresholds ``low <= high`` on the calibrated p(class 1). Cases with
``p < low`` are called class 0, ``p >= high`` class 1, the rest are referred. The band always
contains the run's decision threshold, so a case outside it gets the decision the threshold
gives. More classes: a case is referred when the probability of its decided (arg-max)
class ``k`` is below ``class_min_confidence[k]`` (runs made before 2026-12-03: its largest
probability below one ``min_confidence``).

Rules (``refer.rule``):
    coverage: refer the share ``1 - coverage`` of validation cases. Two classes: class by
        class, as the selective order of ``medlens.trust.selective`` keeps them: of the
        validation cases the threshold calls class 0, the share ``1 - coverage`` nearest the
        threshold, and the same share of those it calls class 1. It reads only the
        validation scores, not their labels. More classes: likewise, the share
        ``1 - coverage`` of the validation cases decided each class with the lowest
        probability of that class (a class never decided on validation: the least confident
        share of all cases).
    sens_spec: two classes only. ``low`` is the highest threshold whose validation
        sensitivity is at least ``sensitivity`` (rule-out: few positives fall below it);
        ``high`` the lowest whose specificity is at least ``specificity`` (rule-in). When one
        threshold meets both targets nothing is referred.
    none: no band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import ConfigError, InputError

REFER_RULES = ("coverage", "sens_spec", "none")
#: Above every probability: a band reaching the top refers p(class 1) = 1 too.
_ABOVE_ONE = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True)
class ReferBand:
    """Which cases are referred.

    Attributes:
        rule: ``coverage``, ``sens_spec`` or ``none``.
        low, high: two classes: refer when ``low <= p(class 1) < high`` (empty when equal).
        class_min_confidence: more classes: refer a case decided class ``k`` when its
            probability of ``k`` is below the ``k``-th value.
        min_confidence: more classes, bands recorded before ``class_min_confidence``: refer
            when the largest probability is below it.
        targets: what the rule aimed at (``coverage``, ``sensitivity``, ``specificity``).
    """

    rule: str = "none"
    low: float | None = None
    high: float | None = None
    min_confidence: float | None = None
    targets: tuple[tuple[str, float], ...] = ()
    class_min_confidence: tuple[float, ...] | None = None

    def refers(self, probs: ArrayLike) -> np.ndarray:
        """``(N,)`` bool: which of the calibrated probabilities ``(N, K)`` are referred."""
        p = np.asarray(probs, dtype=float)
        if self.low is not None and self.high is not None:
            return (p[:, 1] >= self.low) & (p[:, 1] < self.high)
        if self.class_min_confidence is not None:
            minimum = np.asarray(self.class_min_confidence, dtype=float)
            if p.ndim != 2 or p.shape[1] != minimum.size:
                raise InputError(
                    "refer",
                    f"the refer band has thresholds for {minimum.size} classes, "
                    f"the probabilities {p.shape[-1]}",
                )
            decided = p.argmax(axis=1)
            return p[np.arange(len(p)), decided] < minimum[decided]
        if self.min_confidence is not None:
            return p.max(axis=1) < self.min_confidence
        return np.zeros(len(p), dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "low": self.low,
            "high": self.high,
            "min_confidence": self.min_confidence,
            "class_min_confidence": (
                None if self.class_min_confidence is None else list(self.class_min_confidence)
            ),
            "targets": dict(self.targets),
        }

    def public(self) -> dict[str, Any]:
        """The band as the service and the web page show it (``to_dict`` less the targets)."""
        return {k: v for k, v in self.to_dict().items() if k != "targets"}

    @classmethod
    def from_dict(cls, record: dict[str, Any] | None) -> ReferBand:
        """The band ``to_dict`` recorded; ``None`` (a run made before bands) refers nothing."""
        if not record:
            return cls()
        try:
            return cls(
                rule=str(record.get("rule", "none")),
                low=None if record.get("low") is None else float(record["low"]),
                high=None if record.get("high") is None else float(record["high"]),
                min_confidence=(
                    None
                    if record.get("min_confidence") is None
                    else float(record["min_confidence"])
                ),
                targets=tuple((str(k), float(v)) for k, v in (record.get("targets") or {}).items()),
                class_min_confidence=(
                    None
                    if record.get("class_min_confidence") is None
                    else tuple(float(v) for v in record["class_min_confidence"])
                ),
            )
        except (TypeError, ValueError, AttributeError):
            raise InputError("refer", "the refer band's thresholds are malformed") from None


def _coverage_band_binary(p: np.ndarray, threshold: float, coverage: float) -> tuple[float, float]:
    """``(low, high)`` referring, on each side of ``threshold``, the share ``1 - coverage`` of
    the validation scores ``p`` that side holds, those nearest the threshold (rounded down)."""
    below = np.sort(p[p < threshold])
    n_below = _n_referred(below.size, coverage)
    low = float(below[below.size - n_below]) if n_below > 0 else threshold
    high = max(_least_confident_share(p[p >= threshold], coverage), threshold)
    return low, high


def _sens_spec_band(
    y: np.ndarray, p: np.ndarray, threshold: float, sensitivity: float, specificity: float
) -> tuple[float, float]:
    positives = np.sort(p[y == 1])[::-1]
    negatives = np.sort(p[y == 0])
    if positives.size == 0 or negatives.size == 0:
        raise InputError("val", "a sens_spec refer band needs validation cases of both classes")
    low = float(positives[math.ceil(sensitivity * positives.size) - 1])
    high = float(np.nextafter(negatives[math.ceil(specificity * negatives.size) - 1], 2.0))
    low, high = min(low, threshold), max(high, threshold)
    return (threshold, threshold) if low >= high else (low, high)


def choose_band(
    rule: str,
    labels: ArrayLike,
    probs: ArrayLike,
    threshold: float,
    coverage: float = 0.9,
    sensitivity: float = 0.95,
    specificity: float = 0.95,
) -> ReferBand:
    """The refer band of ``rule`` chosen on VALIDATION labels ``(N,)`` and calibrated
    probabilities ``(N, K)``, around the decision ``threshold`` (two classes).

    Raises:
        ConfigError: an unknown rule, or ``sens_spec`` for more than two classes.
        InputError: malformed arrays, or a class missing for ``sens_spec``.

    Example:
        >>> band = choose_band("coverage", y_val, p_val, 0.5, coverage=0.8)  # doctest: +SKIP
        >>> band.refers(p_test)  # doctest: +SKIP
    """
    if rule not in REFER_RULES:
        raise ConfigError("refer.rule", f"unknown rule {rule!r}; use {', '.join(REFER_RULES)}")
    if rule == "none":
        return ReferBand()
    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels).astype(int).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[0] == 0:
        raise InputError("val", f"expected (N, K) probabilities for {y.shape[0]} labels")
    binary = p.shape[1] == 2
    if rule == "sens_spec":
        if not binary:
            raise ConfigError(
                "refer.rule", f"sens_spec needs two classes, not {p.shape[1]}; use coverage"
            )
        low, high = _sens_spec_band(y, p[:, 1], threshold, sensitivity, specificity)
        targets = (("sensitivity", sensitivity), ("specificity", specificity))
        return ReferBand(rule, low, high, targets=targets)
    if binary:
        low, high = _coverage_band_binary(p[:, 1], threshold, coverage)
        return ReferBand(rule, low, high, targets=(("coverage", coverage),))
    decided = p.argmax(axis=1)
    overall = _least_confident_share(p.max(axis=1), coverage)
    minimum = tuple(
        _least_confident_share(p[decided == k, k], coverage) if (decided == k).any() else overall
        for k in range(p.shape[1])
    )
    return ReferBand(rule, targets=(("coverage", coverage),), class_min_confidence=minimum)


def _least_confident_share(confidence: np.ndarray, coverage: float) -> float:
    """The confidence below which lie the share ``1 - coverage`` of ``confidence`` (rounded
    down): 0 when that is no case."""
    ordered = np.sort(confidence)
    n_refer = _n_referred(len(ordered), coverage)
    if n_refer == 0:
        return 0.0
    return float(ordered[n_refer]) if n_refer < len(ordered) else _ABOVE_ONE


def _n_referred(n: int, coverage: float) -> int:
    """How many of ``n`` cases the share ``1 - coverage`` refers (rounded down)."""
    return int(math.floor((1.0 - coverage) * n + 1e-9))
