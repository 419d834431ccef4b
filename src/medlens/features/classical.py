"""Classical classifiers on feature vectors, and the scaler -> selector -> classifier pipeline.

Every classifier gives class probabilities (``predict_proba``). SVMs are wrapped in
``CalibratedClassifierCV(SVC(...), ensemble=False)`` (Platt scaling on 5 internal folds),
which is what scikit-learn 1.9 asks for in place of the deprecated ``SVC(probability=True)``;
tune their parameters in a grid as ``classify__estimator__C``. Classes are weighted
inversely to their frequency by default (``class_weight="balanced"``), as the deep trainer
weights its loss; pass ``class_weight=None`` to turn it off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from medlens.errors import ConfigError
from medlens.features.named import build_named, split_spec
from medlens.features.selection import make_selector
from medlens.registry import Registry

CLASSIFIERS: Registry[Callable[..., BaseEstimator]] = Registry("classifier")
ClassWeight: TypeAlias = str | dict | None
EstimatorSpec: TypeAlias = str | Mapping[str, Any] | BaseEstimator


def _calibrated_svc(svc: SVC) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False)


@CLASSIFIERS.register("svm_linear")
def svm_linear(
    C: float = 1.0, class_weight: ClassWeight = "balanced", seed: int = 0
) -> CalibratedClassifierCV:
    """A linear-kernel SVM with Platt-scaled probabilities."""
    return _calibrated_svc(SVC(kernel="linear", C=C, class_weight=class_weight, random_state=seed))


@CLASSIFIERS.register("svm_rbf")
def svm_rbf(
    C: float = 1.0,
    gamma: str | float = "scale",
    class_weight: ClassWeight = "balanced",
    seed: int = 0,
) -> CalibratedClassifierCV:
    """An RBF-kernel SVM with Platt-scaled probabilities."""
    svc = SVC(kernel="rbf", C=C, gamma=gamma, class_weight=class_weight, random_state=seed)
    return _calibrated_svc(svc)


@CLASSIFIERS.register("random_forest")
def random_forest(
    n_estimators: int = 300,
    max_depth: int | None = None,
    min_samples_leaf: int = 1,
    max_features: str | float | int = "sqrt",
    class_weight: ClassWeight = "balanced",
    seed: int = 0,
) -> RandomForestClassifier:
    """A random forest (single-threaded, seeded)."""
    return RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        class_weight=class_weight,
        random_state=seed,
        n_jobs=1,
    )


@CLASSIFIERS.register("logistic_regression")
def logistic_regression(
    C: float = 1.0,
    l1_ratio: float = 0.0,
    class_weight: ClassWeight = "balanced",
    max_iter: int = 5000,
    seed: int = 0,
) -> LogisticRegression:
    """Logistic regression, L2-penalised (``l1_ratio=0``) or elastic net / L1 (saga solver)."""
    return LogisticRegression(
        C=C,
        l1_ratio=l1_ratio,
        solver="lbfgs" if l1_ratio == 0 else "saga",
        class_weight=class_weight,
        max_iter=max_iter,
        random_state=seed,
    )


@CLASSIFIERS.register("knn")
def knn(n_neighbors: int = 15, weights: str = "distance") -> KNeighborsClassifier:
    """k nearest neighbours (Euclidean, on the scaled features)."""
    return KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights)


@CLASSIFIERS.register("gradient_boosting")
def gradient_boosting(
    learning_rate: float = 0.1,
    max_iter: int = 200,
    max_leaf_nodes: int = 15,
    l2_regularization: float = 0.0,
    class_weight: ClassWeight = "balanced",
    seed: int = 0,
) -> HistGradientBoostingClassifier:
    """Histogram gradient-boosted trees (scikit-learn's fast implementation)."""
    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        l2_regularization=l2_regularization,
        class_weight=class_weight,
        random_state=seed,
    )


def make_classifier(name: str, seed: int = 0, **params: Any) -> BaseEstimator:
    """The scikit-learn classifier registered as ``name``, with probability outputs.

    Args:
        name: ``svm_linear``, ``svm_rbf``, ``random_forest``, ``logistic_regression``,
            ``knn`` or ``gradient_boosting``.
        seed: seeds every random part.
        **params: the builder's parameters (``C``, ``n_estimators``, ``class_weight``...).

    Raises:
        UnknownNameError: an unknown name.
        ConfigError: a parameter the classifier does not take.
    """
    return build_named(CLASSIFIERS, name, params, "features.classifier", seed=seed)


def _estimator(spec: EstimatorSpec | None, make: Callable[..., Any], key: str, seed: int) -> Any:
    if spec is None:
        return "passthrough"
    if isinstance(spec, BaseEstimator):
        return spec
    name, params = split_spec(spec, key)
    return make(name, seed=seed, **params)


def make_feature_pipeline(
    selector: EstimatorSpec | None,
    classifier: EstimatorSpec,
    scale: bool = True,
    seed: int = 0,
) -> Pipeline:
    """``StandardScaler -> selector -> classifier`` as a scikit-learn ``Pipeline``.

    The steps are named ``scale``, ``select`` and ``classify`` (``"passthrough"`` when
    ``scale`` is False or ``selector`` is None), so a ``GridSearchCV`` grid reads
    ``{"select__k": [5, 10], "classify__estimator__C": [0.1, 1]}``.

    Args:
        selector: a ``make_selector`` name, ``{"name": ..., **params}``, a scikit-learn
            selector, or None for no selection.
        classifier: a ``make_classifier`` name, a mapping, or a scikit-learn classifier.
        scale: standardise every feature (fitted on the training data only).
        seed: seeds the selector and classifier built from names.

    Example:
        >>> pipe = make_feature_pipeline({"name": "anova", "k": 10}, "random_forest")
        >>> pipe.fit(X_train, y_train).predict_proba(X_test)[:, 1]
    """
    return Pipeline(
        [
            ("scale", StandardScaler() if scale else "passthrough"),
            ("select", _estimator(selector, make_selector, "features.selector", seed)),
            ("classify", _estimator(classifier, make_classifier, "features.classifier", seed)),
        ]
    )


def hybrid_pipeline(
    n_features: int = 32,
    svm: str = "svm_rbf",
    step: int | float = 0.1,
    seed: int = 0,
    **svm_params: Any,
) -> Pipeline:
    """The hybrid "CNN features -> RFE -> SVM" classifier, to fit on deep features
    (``extract_deep_features`` / ``medlens.inference.features.features_from_run``): standardise, keep ``n_features``
    by recursive elimination with a linear SVM, classify with an SVM.

    Args:
        n_features: features RFE keeps.
        svm: ``svm_rbf`` or ``svm_linear``.
        step: RFE's features dropped per round (int) or fraction of the start (float).
        seed: seeds both SVMs and the calibration.
        **svm_params: the final SVM's parameters (``C``, ``gamma``, ``class_weight``).
    """
    if svm not in ("svm_rbf", "svm_linear"):
        raise ConfigError("features.classifier", f"the hybrid pipeline ends in an SVM, not {svm!r}")
    selector = make_selector("rfe", seed=seed, k=n_features, step=step)
    return make_feature_pipeline(selector, make_classifier(svm, seed=seed, **svm_params))
