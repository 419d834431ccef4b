"""Post-hoc calibration of class probabilities, fitted on the validation split only.

Every calibrator maps probabilities ``(N, K)`` to probabilities ``(N, K)``. It reads them as
log-probabilities (a network's logits up to a per-row constant, so ``softmax(z / T)`` equals
``softmax(log p / T)``), which lets one calibrator serve PyTorch, ONNX, flip-TTA averages,
scikit-learn pipelines and ensembles alike: medlens applies it after whichever engine ran.

Methods:
    temperature: ``softmax(log p / T)`` with one temperature T > 0 minimising the validation
        log loss (Guo et al. 2017), fitted by scikit-learn's ``CalibratedClassifierCV(
        method="temperature")``. It keeps the arg-max class and, for two classes, the ranking
        of p(class 1), so the AUC is unchanged. The default.
    bcts: bias-corrected temperature scaling, ``softmax(log p / T + b)`` with one bias per
        class (b of class 0 fixed at 0), all minimising the validation log loss (Alexandari
        et al. 2020). The bias moves probabilities towards validation's class mix, which a
        temperature alone cannot (a class-weighted loss shifts them away from it). For two
        classes p(class 1) stays a monotone function of the raw one (AUC unchanged); for
        more it may change the arg-max.
    dirichlet: a multinomial logistic regression on ``log p`` (Kull et al. 2019; for two
        classes it is beta calibration), L2-penalised, its inverse penalty C chosen by
        stratified cross-validated log loss on the validation cases (``DIRICHLET_CS``), as
        Kull et al. choose theirs; C = 1 when a class has fewer than 2 validation cases. It
        may change rankings.
    isotonic: a monotone step function per class, one-vs-rest, rows renormalised
        (scikit-learn's isotonic calibration). Its ties may change AUC slightly.
    none: probabilities as they are.

Two-class probabilities are read through p(class 1) alone (its log-odds), so that the
calibrated p(class 1) is a monotone function of the raw one: no ranking changes, whatever
float32 rounding did to p(class 0).

The fitted parameters are plain numbers (``to_dict``), written to the run's
``calibration.json`` and read back with ``calibrator_from_dict``; replaying them needs only
numpy.

Example:
    >>> calibrator = fit_calibrator("temperature", val_probs, val_labels)  # doctest: +SKIP
    >>> calibrator.transform(test_probs)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, softmax

from medlens.errors import ConfigError, InputError

log = logging.getLogger(__name__)

CalibrationMethod = Literal["temperature", "bcts", "dirichlet", "isotonic", "none"]
METHODS: tuple[str, ...] = ("temperature", "bcts", "dirichlet", "isotonic", "none")
#: bcts searches log T within these bounds and each bias, relative to the median scores
#: (``_fit_bcts``), within +-_BCTS_BIAS_BOUND: finite, so a separable split cannot diverge.
_BCTS_LOG_T_BOUNDS = (float(np.log(0.01)), float(np.log(100.0)))
_BCTS_BIAS_BOUND = 30.0
#: log-odds given to p(class 1) = 1 and 0 exactly: beyond every finite float64 log-odds
#: (+36.7 and -744.4), so that the map from p to log-odds stays strictly increasing.
_LOGIT_AT_ONE = 37.0
_LOGIT_AT_ZERO = -746.0
#: Dirichlet calibration reads log p clipped at this probability (its features stay finite).
_DIRICHLET_FLOOR = 1e-12
#: The inverse L2 penalties Dirichlet calibration chooses among (by cross-validated log loss):
#: a fixed C penalises a small validation split's coefficients more than a large one's (the
#: loss is summed over cases), so C = 1 under-fits a weak model's 100 validation cases.
DIRICHLET_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 4, 9))  # one per decade
#: Folds of that choice (fewer when the rarest class has fewer validation cases).
_DIRICHLET_FOLDS = 5


def _probabilities(probs: ArrayLike) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError("probabilities", f"expected shape (N, K) with K >= 2, got {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise InputError("probabilities", "must be finite numbers in [0, 1]")
    return p


def binary_log_odds(p_pos: ArrayLike) -> np.ndarray:
    """``log p - log(1 - p)`` of p(class 1), strictly increasing in p, finite at 0 and 1."""
    p = np.asarray(p_pos, dtype=float)
    with np.errstate(divide="ignore"):
        z = np.log(p) - np.log1p(-p)
    return np.where(p >= 1.0, _LOGIT_AT_ONE, np.where(p <= 0.0, _LOGIT_AT_ZERO, z))


def log_scores(probs: ArrayLike) -> np.ndarray:
    """What calibrators read: the log-odds of class 1 ``(N,)`` for two classes, else
    ``log p`` ``(N, K)`` (p floored at the smallest positive float64)."""
    p = _probabilities(probs)
    if p.shape[1] == 2:
        return binary_log_odds(p[:, 1])
    return np.log(np.clip(p, np.finfo(float).tiny, 1.0))


def _two_columns(p_pos: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p_pos, p_pos])


def _classes_of(scores: np.ndarray) -> int:
    """How many classes ``log_scores`` came from."""
    return 2 if scores.ndim == 1 else scores.shape[1]


def _classes_of_rows(rows: int) -> int:
    """How many classes a calibrator with ``rows`` per-class parameter rows serves: a
    two-class one keeps one row (for class 1's log-odds), others one per class."""
    return 2 if rows == 1 else rows


def _rows_for(n_classes: int) -> int:
    """The inverse of ``_classes_of_rows``."""
    return 1 if n_classes == 2 else n_classes


def _check_classes(method: str, fitted: int, given: int) -> None:
    if fitted != given:
        raise InputError(
            "probabilities", f"the {method} calibrator was fitted on {fitted} classes, not {given}"
        )


class Calibrator(ABC):
    """A fitted map from probabilities ``(N, K)`` to calibrated probabilities ``(N, K)``."""

    method: str

    @abstractmethod
    def transform(self, probs: ArrayLike) -> np.ndarray:
        """Calibrated probabilities, rows summing to 1."""

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The fitted numbers (JSON-ready)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"method": ..., **parameters}``, what ``calibrator_from_dict`` reads back."""
        return {"method": self.method, **self.parameters()}


@dataclass(frozen=True)
class Uncalibrated(Calibrator):
    """``calibration.method: none``: probabilities as they are."""

    method = "none"

    def transform(self, probs: ArrayLike) -> np.ndarray:
        return _probabilities(probs)

    def parameters(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class TemperatureScaling(Calibrator):
    """``softmax(log p / temperature)``; above 1 softens over-confident probabilities."""

    temperature: float
    method = "temperature"

    def transform(self, probs: ArrayLike) -> np.ndarray:
        scores = log_scores(probs)
        if scores.ndim == 1:
            return _two_columns(expit(scores / self.temperature))
        return softmax(scores / self.temperature, axis=1)

    def parameters(self) -> dict[str, Any]:
        return {"temperature": float(self.temperature)}


@dataclass(frozen=True)
class BiasCorrectedTemperature(Calibrator):
    """``softmax(log p / temperature + bias)``; two classes: ``sigmoid(log-odds /
    temperature + bias[0])`` (one bias, on class 1's log-odds).

    ``at_bound`` names the parameters whose fit ended on a bound of its search
    (``_fit_bcts``): recorded in ``calibration.json`` so that a degenerate fit is visible.
    """

    temperature: float
    bias: tuple[float, ...]
    at_bound: tuple[str, ...] = ()
    method = "bcts"

    def transform(self, probs: ArrayLike) -> np.ndarray:
        scores = log_scores(probs)
        _check_classes(self.method, _classes_of_rows(len(self.bias)), _classes_of(scores))
        if scores.ndim == 1:
            return _two_columns(expit(scores / self.temperature + self.bias[0]))
        return softmax(scores / self.temperature + np.asarray(self.bias), axis=1)

    def parameters(self) -> dict[str, Any]:
        """``temperature``, ``bias`` and, when the fit ended on a bound of its search,
        ``at_bound``: which parameters did (``_fit_bcts``)."""
        numbers: dict[str, Any] = {
            "temperature": float(self.temperature),
            "bias": [float(b) for b in self.bias],
        }
        return numbers | ({"at_bound": list(self.at_bound)} if self.at_bound else {})


def _fit_bcts(scores: np.ndarray, y: np.ndarray, warn: bool = True) -> BiasCorrectedTemperature:
    """Minimise the mean log loss over ``(log T, biases)`` (L-BFGS-B, bounded).

    The biases are searched relative to the median scores: ``z = (s - m) / T + b'`` with
    ``b = b' - m / T``, and ``b'`` bounded by ``_BCTS_BIAS_BOUND``. A network whose log-odds
    all lie far from 0 in a narrow range needs a small T and a bias of about ``-m / T``
    (-35 and beyond), which a bound on ``b`` itself would cut short; bounding ``b'`` keeps
    the search finite on a separable validation split. A fit that still ends on a bound is
    logged as a warning (``BiasCorrectedTemperature.at_bound`` records which).
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    binary = scores.ndim == 1
    n_bias = 1 if binary else scores.shape[1] - 1
    rows = np.arange(len(y))
    centre = np.median(scores, axis=0)
    if not binary:  # softmax reads only differences from class 0
        centre = centre - centre[0]
    centred = scores - centre

    def loss(theta: np.ndarray) -> float:
        inv_t = np.exp(-theta[0])
        if binary:
            z = centred * inv_t + theta[1]
            return float(np.mean(np.logaddexp(0.0, z) - y * z))
        z = centred * inv_t + np.concatenate([[0.0], theta[1:]])
        return float(np.mean(logsumexp(z, axis=1) - z[rows, y]))

    bounds = [_BCTS_LOG_T_BOUNDS] + [(-_BCTS_BIAS_BOUND, _BCTS_BIAS_BOUND)] * n_bias
    fitted = minimize(loss, np.zeros(1 + n_bias), method="L-BFGS-B", bounds=bounds)
    first = 0 if binary else 1  # the recorded index of the first searched bias
    names = ["temperature", *(f"bias[{first + i}]" for i in range(n_bias))]
    at_bound = _on_bounds(names, fitted.x, bounds)
    temperature = float(np.exp(fitted.x[0]))
    shifts = np.atleast_1d(centre if binary else centre[1:]) / temperature
    bias = tuple(float(b) for b in fitted.x[1:] - shifts)
    if at_bound and warn:
        log.warning(
            "bcts calibration ended on the bound of its search for %s (temperature in "
            "[0.01, 100], centred bias within +-%g): the validation split is (nearly) "
            "separable or too small; the probabilities will be extreme",
            ", ".join(at_bound),
            _BCTS_BIAS_BOUND,
        )
    return BiasCorrectedTemperature(
        temperature, bias if binary else (0.0, *bias), at_bound=at_bound
    )


def _on_bounds(
    names: list[str], values: np.ndarray, bounds: list[tuple[float, float]]
) -> tuple[str, ...]:
    """The names of the ``values`` that sit on a bound of their search."""
    return tuple(
        name
        for name, value, (low, high) in zip(names, values, bounds, strict=True)
        if min(abs(value - low), abs(value - high)) < 1e-6
    )


@dataclass(frozen=True)
class DirichletCalibration(Calibrator):
    """``softmax(log p @ coef.T + intercept)`` (two classes: ``sigmoid``, one row of coef)."""

    coef: tuple[tuple[float, ...], ...]
    intercept: tuple[float, ...]
    #: the inverse L2 penalty of the fit, and how it was chosen (``cv5``: 5-fold cross-
    #: validated log loss; ``fixed``: too few cases of a class to hold any out); None for a
    #: record written before the choice existed (C = 1).
    C: float | None = None
    C_chosen_by: str | None = None
    method = "dirichlet"

    def transform(self, probs: ArrayLike) -> np.ndarray:
        p = _probabilities(probs)
        _check_classes(self.method, len(self.coef[0]), p.shape[1])
        features = np.log(np.clip(p, _DIRICHLET_FLOOR, 1.0))
        z = features @ np.asarray(self.coef).T + np.asarray(self.intercept)
        if z.shape[1] == 1:
            return _two_columns(expit(z[:, 0]))
        return softmax(z, axis=1)

    def parameters(self) -> dict[str, Any]:
        fitted: dict[str, Any] = {
            "coef": [list(row) for row in self.coef],
            "intercept": list(self.intercept),
        }
        if self.C is not None:
            fitted["C"] = self.C
            fitted["C_chosen_by"] = self.C_chosen_by
        return fitted


@dataclass(frozen=True)
class IsotonicCalibration(Calibrator):
    """A monotone step function of each class's score (two classes: of the log-odds of class
    1), interpolated linearly between its knots and held constant beyond them; one-vs-rest
    rows are renormalised (uniform where every class got 0), as scikit-learn does."""

    knots_x: tuple[tuple[float, ...], ...]
    knots_y: tuple[tuple[float, ...], ...]
    method = "isotonic"

    def transform(self, probs: ArrayLike) -> np.ndarray:
        scores = log_scores(probs)
        _check_classes(self.method, _classes_of_rows(len(self.knots_x)), _classes_of(scores))
        if scores.ndim == 1:
            return _two_columns(np.interp(scores, self.knots_x[0], self.knots_y[0]))
        out = np.column_stack(
            [
                np.interp(scores[:, k], x, y)
                for k, (x, y) in enumerate(zip(self.knots_x, self.knots_y, strict=True))
            ]
        )
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.divide(out, total, out=uniform, where=total > 0)

    def parameters(self) -> dict[str, Any]:
        return {
            "knots_x": [list(x) for x in self.knots_x],
            "knots_y": [list(y) for y in self.knots_y],
        }


def _check_labels(labels: ArrayLike, n_cases: int, n_classes: int, method: str) -> np.ndarray:
    y = np.asarray(labels).astype(int).reshape(-1)
    if y.shape[0] != n_cases:
        raise InputError("labels", f"expected {n_cases} validation labels, got {y.shape[0]}")
    if y.min(initial=0) < 0 or y.max(initial=0) >= n_classes:
        raise InputError("labels", f"class indices must lie in [0, {n_classes - 1}]")
    missing = sorted(set(range(n_classes)) - set(y.tolist()))
    if missing:
        raise InputError(
            "val",
            f"{method} calibration is fitted on validation cases of every class; class "
            f"{missing[0]} has none (set calibration.method: none)",
        )
    return y


def _sklearn_calibration(method: str, scores: np.ndarray, y: np.ndarray, n_classes: int) -> Any:
    """scikit-learn's calibration of fixed scores: a frozen pass-through classifier whose
    decision function is ``scores`` (half the log-odds for two classes, as scikit-learn reads
    a binary decision ``d`` as the logits ``(-d, d)``), fitted on every case at once."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    class _Scores(ClassifierMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> _Scores:
            self.classes_ = np.arange(n_classes)
            return self

        def decision_function(self, X: Any) -> np.ndarray:
            x = np.asarray(X, dtype=float)
            return x[:, 0] / 2.0 if n_classes == 2 else x

        def predict(self, X: Any) -> np.ndarray:
            return np.zeros(len(X), dtype=int)

    x = scores[:, None] if scores.ndim == 1 else scores
    everything = [(np.arange(len(y)), np.arange(len(y)))]  # frozen: one "fold", all cases
    fitted = CalibratedClassifierCV(
        FrozenEstimator(_Scores().fit(x)), method=method, cv=everything
    ).fit(x, y)
    return fitted.calibrated_classifiers_[0].calibrators


def _fit_dirichlet(p: np.ndarray, y: np.ndarray) -> DirichletCalibration:
    """The L2-penalised logistic regression on ``log p`` whose C (of ``DIRICHLET_CS``) has
    the lowest stratified cross-validated log loss (seeded folds; ties: the smaller C), then
    refitted on every case; C = 1 when a class has fewer than 2 cases to hold out."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    features = np.log(np.clip(p, _DIRICHLET_FLOOR, 1.0))
    folds = int(min(_DIRICHLET_FOLDS, np.bincount(y, minlength=p.shape[1]).min()))
    if folds < 2:
        model: Any = LogisticRegression(C=1.0, tol=1e-8, max_iter=1000).fit(features, y)
        c, chosen_by = 1.0, "fixed"
    else:
        model = LogisticRegressionCV(
            Cs=list(DIRICHLET_CS),
            l1_ratios=(0.0,),
            cv=StratifiedKFold(folds, shuffle=True, random_state=0),
            scoring="neg_log_loss",
            tol=1e-8,
            max_iter=1000,
            use_legacy_attributes=False,
        ).fit(features, y)
        c, chosen_by = float(model.C_), f"cv{folds}"
    coef = tuple(tuple(float(v) for v in row) for row in model.coef_)
    return DirichletCalibration(coef, tuple(float(v) for v in model.intercept_), c, chosen_by)


def fit_calibrator(
    method: str, probs: ArrayLike, labels: ArrayLike, warn: bool = True
) -> Calibrator:
    """Fit the calibrator ``method`` on VALIDATION probabilities ``(N, K)`` and labels ``(N,)``.

    ``warn=False`` keeps a bcts fit that ends on a bound of its search from logging a
    warning (it still records ``at_bound``): for fits that only score a calibrator, such as
    ``calibration_choice``'s folds, not the run's own.

    Raises:
        ConfigError: an unknown method (key ``calibration.method``).
        InputError: malformed arrays, or a class without validation cases.
    """
    if method not in METHODS:
        raise ConfigError(
            "calibration.method", f"unknown method {method!r}; use {', '.join(METHODS)}"
        )
    if method == "none":
        return Uncalibrated()
    p = _probabilities(probs)
    y = _check_labels(labels, p.shape[0], p.shape[1], method)
    if method == "dirichlet":
        return _fit_dirichlet(p, y)
    scores = log_scores(p)
    if method == "bcts":
        return _fit_bcts(scores, y, warn)
    calibrators = _sklearn_calibration(method, scores, y, p.shape[1])
    if method == "temperature":
        return TemperatureScaling(float(1.0 / calibrators[0].beta_))
    scale = 2.0 if p.shape[1] == 2 else 1.0  # knots back from half log-odds to log-odds
    return IsotonicCalibration(
        tuple(tuple(float(v) * scale for v in c.X_thresholds_) for c in calibrators),
        tuple(tuple(float(v) for v in c.y_thresholds_) for c in calibrators),
    )


def calibrator_from_dict(record: dict[str, Any] | None, n_classes: int | None = None) -> Calibrator:
    """The calibrator ``Calibrator.to_dict`` recorded; ``None`` (nothing recorded) is
    ``Uncalibrated``, an uncalibrated record says ``{"method": "none"}``.

    Every parameter is checked: finite numbers, the shapes the method needs (one bias per
    class, Dirichlet rows as wide as the classes, isotonic knots paired, sorted, with
    ``knots_y`` in [0, 1]) and, when ``n_classes`` is given (the run's classes), that many
    classes.

    Raises:
        InputError: a record without a method, an unknown method, or a missing or malformed
            parameter, naming the field (key ``calibration``; ``read_calibrator`` names the
            file).
    """
    if record is None:
        return Uncalibrated()
    if not isinstance(record, dict):
        raise InputError("calibration", "expected a JSON object")
    if "method" not in record:
        raise InputError(
            "calibration",
            'records no method; a run without calibration records {"method": "none"}',
        )
    method = record["method"]
    reader = _READERS.get(method) if isinstance(method, str) else None
    if reader is None:
        raise InputError("calibration", f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return reader(_Record(method, record), n_classes)


_MISSING = object()


@dataclass(frozen=True)
class _Record:
    """A calibration record's fields, read as numbers with one error naming the field."""

    method: str
    fields: dict[str, Any]

    def error(self, field: str, reason: str) -> InputError:
        return InputError("calibration", f"the {self.method} calibrator's {field} {reason}")

    def numbers(self, field: str, ndim: int, value: Any = _MISSING) -> np.ndarray:
        """``field`` (or ``value``, an item of it) as a finite, non-empty float array."""
        if value is _MISSING:
            if field not in self.fields:
                raise self.error(field, "is missing")
            value = self.fields[field]
        shape = ("a number", "a list of numbers", "a list of lists of numbers")[ndim]
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise self.error(field, f"must be {shape}") from None
        if array.ndim != ndim or isinstance(value, bool):
            raise self.error(field, f"must be {shape}")
        if array.size == 0:
            raise self.error(field, "is empty")
        if not np.isfinite(array).all():
            raise self.error(field, "holds NaN or infinite values")
        return array

    def rows(self, field: str, rows: int, n_classes: int | None, noun: str) -> None:
        """Refuse ``rows`` per-class rows for ``n_classes`` (or for any class count when
        unknown: two rows serve no class count)."""
        expected = _rows_for(n_classes) if n_classes is not None else None
        if rows == 2 and expected is None:
            expected = 1
        if expected is not None and rows != expected:
            classes = n_classes if n_classes is not None else 2
            raise self.error(
                field, f"has {rows} {noun}; a run of {classes} classes needs {expected}"
            )

    def temperature(self) -> float:
        temperature = float(self.numbers("temperature", 0))
        if temperature <= 0:
            raise self.error("temperature", f"must be above 0, not {temperature}")
        return temperature


def _read_none(record: _Record, n_classes: int | None) -> Calibrator:
    return Uncalibrated()


def _read_temperature(record: _Record, n_classes: int | None) -> Calibrator:
    return TemperatureScaling(record.temperature())


def _read_bcts(record: _Record, n_classes: int | None) -> Calibrator:
    temperature = record.temperature()
    bias = record.numbers("bias", 1)
    record.rows("bias", len(bias), n_classes, "values")
    at_bound = record.fields.get("at_bound", [])
    if not (isinstance(at_bound, list) and all(isinstance(name, str) for name in at_bound)):
        raise record.error("at_bound", "must be a list of parameter names")
    return BiasCorrectedTemperature(
        temperature, tuple(float(b) for b in bias), at_bound=tuple(at_bound)
    )


def _read_dirichlet(record: _Record, n_classes: int | None) -> Calibrator:
    coef = record.numbers("coef", 2)
    intercept = record.numbers("intercept", 1)
    width = coef.shape[1]
    if width < 2 or (n_classes is not None and width != n_classes):
        wanted = n_classes if n_classes is not None else "2 or more"
        raise record.error("coef", f"rows have {width} values, one per class: {wanted}")
    record.rows("coef", len(coef), width, "rows")
    if len(intercept) != len(coef):
        raise record.error("intercept", f"has {len(intercept)} values; coef has {len(coef)} rows")
    c, chosen_by = None, None
    if "C" in record.fields:
        c = float(record.numbers("C", 0))
        if c <= 0:
            raise record.error("C", f"must be above 0, not {c}")
        chosen_by = record.fields.get("C_chosen_by")
        if not isinstance(chosen_by, str):
            raise record.error("C_chosen_by", "must name how C was chosen")
    return DirichletCalibration(
        tuple(tuple(float(v) for v in row) for row in coef),
        tuple(float(v) for v in intercept),
        c,
        chosen_by,
    )


def _read_isotonic(record: _Record, n_classes: int | None) -> Calibrator:
    knots: dict[str, list[Any]] = {}
    for name in ("knots_x", "knots_y"):
        value = record.fields.get(name)
        if not isinstance(value, list) or not value:
            raise record.error(name, "must be a non-empty list of lists of numbers")
        knots[name] = value
    xs, ys = knots["knots_x"], knots["knots_y"]
    if len(xs) != len(ys):
        raise record.error("knots_y", f"has {len(ys)} lists; knots_x has {len(xs)}")
    record.rows("knots_x", len(xs), n_classes, "lists")
    knots_x, knots_y = [], []
    for k, (x_value, y_value) in enumerate(zip(xs, ys, strict=True)):
        x = record.numbers(f"knots_x[{k}]", 1, x_value)
        y = record.numbers(f"knots_y[{k}]", 1, y_value)
        if len(x) != len(y):
            raise record.error(f"knots_y[{k}]", f"has {len(y)} values; knots_x[{k}] has {len(x)}")
        if (np.diff(x) < 0).any():
            raise record.error(f"knots_x[{k}]", "must be sorted in increasing order")
        if y.min() < 0 or y.max() > 1:
            raise record.error(f"knots_y[{k}]", "must lie in [0, 1] (probabilities)")
        knots_x.append(tuple(float(v) for v in x))
        knots_y.append(tuple(float(v) for v in y))
    return IsotonicCalibration(tuple(knots_x), tuple(knots_y))


_READERS: dict[str, Callable[[_Record, int | None], Calibrator]] = {
    "none": _read_none,
    "temperature": _read_temperature,
    "bcts": _read_bcts,
    "dirichlet": _read_dirichlet,
    "isotonic": _read_isotonic,
}
