"""Out-of-distribution flags: a feature-space Mahalanobis score (Lee et al. 2018) with a
threshold set on validation to a chosen false-alarm rate.

The features are a network's pooled penultimate activations (or a classical run's feature
vector). On the TRAINING cases: a PCA to at most ``max_dims`` dimensions (a rotation when the
features have fewer; features of different units, as a classical run's, are standardised
first), the class means, and one within-class covariance shrunk by
Ledoit-Wolf (scikit-learn). A case's score is its smallest squared Mahalanobis distance to a
class mean. On the VALIDATION cases: the threshold is the ``1 - false_alarm_rate`` quantile
of their scores, so about that share of in-distribution cases is flagged. Test cases are
never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import ConfigError, InputError

OOD_SCORES = ("mahalanobis", "none")


def _features(values: ArrayLike, name: str, dims: int | None = None) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or (dims is not None and x.shape[1] != dims):
        want = f"(N, {dims})" if dims is not None else "(N, D)"
        raise InputError(name, f"expected features of shape {want}, got {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(name, "features contain NaN or infinite values")
    return x


@dataclass(frozen=True)
class MahalanobisDetector:
    """A fitted Mahalanobis out-of-distribution score and its threshold.

    Attributes:
        center: ``(D,)`` the training features' mean (the PCA's centre).
        components: ``(r, D)`` the PCA's axes (divided by each feature's training standard
            deviation when standardised), so ``(x - center) @ components.T`` is the
            projection.
        class_means: ``(K, r)`` each class's mean in PCA space.
        precision: ``(r, r)`` the inverse of the shrunk within-class covariance.
        threshold: a score above it is flagged.
        false_alarm_rate: the share of validation cases flagged by design.
    """

    center: np.ndarray
    components: np.ndarray
    class_means: np.ndarray
    precision: np.ndarray
    threshold: float
    false_alarm_rate: float

    @property
    def dims(self) -> int:
        """``D``: the width of the features it reads."""
        return int(self.center.shape[0])

    def score(self, features: ArrayLike) -> np.ndarray:
        """``(N,)`` the smallest squared Mahalanobis distance to a class mean (higher: farther
        from the training data)."""
        x = _features(features, "features", self.dims)
        z = (x - self.center) @ self.components.T
        diffs = z[:, None, :] - self.class_means[None, :, :]  # (N, K, r)
        distances = np.einsum("nkr,rs,nks->nk", diffs, self.precision, diffs)
        return distances.min(axis=1)

    def flags(self, features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (N,), flagged (N,) bool)``."""
        scores = self.score(features)
        return scores, scores > self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        """What ``ood.npz`` holds (``from_arrays`` reads it back)."""
        return {
            "center": self.center,
            "components": self.components,
            "class_means": self.class_means,
            "precision": self.precision,
            "threshold": np.asarray(self.threshold),
            "false_alarm_rate": np.asarray(self.false_alarm_rate),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> MahalanobisDetector:
        """The detector ``arrays()`` recorded (a mapping of arrays, e.g. an open ``.npz``).

        Raises:
            InputError: a missing or inconsistent array (key ``ood``).
        """
        try:
            detector = cls(
                center=np.asarray(arrays["center"], dtype=np.float64),
                components=np.asarray(arrays["components"], dtype=np.float64),
                class_means=np.asarray(arrays["class_means"], dtype=np.float64),
                precision=np.asarray(arrays["precision"], dtype=np.float64),
                threshold=float(arrays["threshold"]),
                false_alarm_rate=float(arrays["false_alarm_rate"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "ood", "the out-of-distribution detector's arrays are malformed"
            ) from None
        r, d = detector.components.shape if detector.components.ndim == 2 else (0, -1)
        if (
            d != detector.dims
            or detector.class_means.ndim != 2
            or detector.class_means.shape[1] != r
            or detector.precision.shape != (r, r)
        ):
            raise InputError("ood", "the out-of-distribution detector's arrays disagree in shape")
        return detector


def fit_mahalanobis(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    val_features: ArrayLike,
    false_alarm_rate: float = 0.05,
    max_dims: int = 256,
    seed: int = 0,
    standardize: bool = False,
) -> MahalanobisDetector:
    """Fit the score on TRAINING features ``(N, D)`` and labels, then set its threshold on
    VALIDATION features so that ``false_alarm_rate`` of them are flagged.

    Args:
        standardize: divide each feature by its training standard deviation first: for
            features in different units (handcrafted ones). A network's pooled activations
            share one scale and are left as they are: dividing by the tiny spread of a unit
            that rarely fires would make every case that fires it look far away.

    Raises:
        ConfigError: a false-alarm rate outside (0, 1) (key ``ood.false_alarm_rate``).
        InputError: malformed features, or too few training cases (fewer than 3).
    """
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    if not 0.0 < false_alarm_rate < 1.0:
        raise ConfigError("ood.false_alarm_rate", f"must lie in (0, 1), got {false_alarm_rate}")
    x = _features(train_features, "train features")
    y = np.asarray(train_labels).astype(int).reshape(-1)
    val = _features(val_features, "val features", x.shape[1])
    if x.shape[0] < 3 or y.shape[0] != x.shape[0] or val.shape[0] == 0:
        raise InputError(
            "train",
            f"an out-of-distribution score needs 3+ training and 1+ validation cases "
            f"(got {x.shape[0]} and {val.shape[0]})",
        )
    dims = int(min(max_dims, x.shape[1], x.shape[0] - 1))
    mean = x.mean(axis=0)
    scale = x.std(axis=0) if standardize else np.ones(x.shape[1])
    scale[scale == 0] = 1.0
    pca = PCA(n_components=dims, random_state=seed).fit((x - mean) / scale)
    z = pca.transform((x - mean) / scale)
    classes = np.unique(y)
    means = np.stack([z[y == c].mean(axis=0) for c in classes])
    centred = z - means[np.searchsorted(classes, y)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    detector = MahalanobisDetector(
        center=(mean + pca.mean_ * scale).astype(np.float64),
        components=(pca.components_ / scale).astype(np.float64),
        class_means=means,
        precision=np.asarray(precision, dtype=np.float64),
        threshold=0.0,
        false_alarm_rate=float(false_alarm_rate),
    )
    threshold = float(np.quantile(detector.score(val), 1.0 - false_alarm_rate, method="higher"))
    return MahalanobisDetector(
        detector.center,
        detector.components,
        detector.class_means,
        detector.precision,
        threshold,
        float(false_alarm_rate),
    )
