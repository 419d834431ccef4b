"""The report's figures about trusting a prediction: the reliability diagram before and after
calibration, and the risk-coverage curve of the kept cases (drawn on the report's Agg
figures, as ``medlens.report.plots``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from sklearn.calibration import CalibrationDisplay

from medlens.metrics.calibration import N_BINS, calibration_gap, reliability_target
from medlens.report.plots import new_figure, save_figure
from medlens.trust.selective import (
    aurc,
    decision_confidence,
    max_softmax,
    risk_coverage,
    stratified_confidence,
)


def plot_reliability_before_after(
    y_true: ArrayLike,
    raw: ArrayLike,
    calibrated: ArrayLike,
    path: str | Path,
    method: str,
    title: str | None = None,
) -> Path:
    """Reliability diagrams (15 equal-width bins) of the probabilities before and after
    calibration on one axes, each with its ECE in the legend."""
    fig, ax = new_figure(5.0, 4.8)
    binary = np.asarray(raw).shape[1] == 2
    for probs, name in ((raw, "before"), (calibrated, f"after ({method})")):
        confidence, outcome = reliability_target(y_true, probs)
        ece = calibration_gap(confidence, outcome, N_BINS)
        CalibrationDisplay.from_predictions(
            outcome.astype(int),
            confidence,
            n_bins=N_BINS,
            strategy="uniform",
            pos_label=1,
            ax=ax,
            name=f"{name}: ECE {ece:.3f}",
        )
    ax.set_xlabel("predicted p(class 1)" if binary else "confidence of the predicted class")
    ax.set_ylabel("observed fraction of class 1" if binary else "accuracy of the predicted class")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title or "Calibration before and after")
    return save_figure(fig, path)


def plot_risk_coverage(
    y_true: ArrayLike,
    preds: ArrayLike,
    probs: ArrayLike,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Risk (the error rate of the kept cases) against coverage, keeping the same share of
    each decided class, most probable decision first (ours), and, for comparison, the most
    probable decisions overall and the largest probabilities (max-softmax); the AURC of each
    is in the legend."""
    fig, ax = new_figure(5.0, 4.4)
    scores = (
        ("class-stratified", stratified_confidence(probs, preds)),
        ("probability of the decision", decision_confidence(probs, preds)),
        ("max-softmax", max_softmax(probs)),
    )
    for name, confidence in scores:
        coverage, risk = risk_coverage(y_true, preds, confidence, "error")
        area = aurc(y_true, preds, confidence, "error")
        ax.plot(coverage, risk, label=f"{name}: AURC {area:.4f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("coverage (share of cases kept)")
    ax.set_ylabel("error rate of the kept cases")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title or "Risk-coverage curve")
    return save_figure(fig, path)
