"""What ``metrics.json`` records under ``trust``: calibration before and after, the refer
band's effect, selective prediction (AURC, balanced accuracy by coverage), the
out-of-distribution flags, per split, and the test split's class mix estimated without its
labels with the calibration after adapting to it. Plain numbers, JSON-ready."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.metrics.calibration import brier, ece, ece_top_label
from medlens.metrics.threshold import predict_labels
from medlens.trust.calibrators import Calibrator
from medlens.trust.label_shift import estimate_prior_shift
from medlens.trust.refer import ReferBand
from medlens.trust.selective import (
    aurc,
    balanced_accuracy,
    coverage_table,
    decision_confidence,
    margin_confidence,
    max_softmax,
    stratified_confidence,
)


def calibration_summary(
    calibrator: Calibrator,
    labels: Mapping[str, np.ndarray],
    raw: Mapping[str, np.ndarray],
    calibrated: Mapping[str, np.ndarray],
    threshold: float | None,
) -> dict[str, Any]:
    """The calibrator's parameters, and per split ECE (``medlens.metrics.calibration``: of
    p(class 1) for two classes; and the top-label ECE), and Brier score before and after."""
    splits = {}
    for split, y in labels.items():
        before = predict_labels(raw[split], threshold)
        after = predict_labels(calibrated[split], threshold)
        splits[split] = {
            "ece_before": ece(y, raw[split], before),
            "ece_after": ece(y, calibrated[split], after),
            "brier_before": brier(y, raw[split], before),
            "brier_after": brier(y, calibrated[split], after),
            "ece_top_label_before": ece_top_label(y, raw[split]),
            "ece_top_label_after": ece_top_label(y, calibrated[split]),
        }
    return {**calibrator.to_dict(), "fitted_on": "val", "splits": splits}


def prior_shift_summary(
    labels: np.ndarray,
    calibrated: np.ndarray,
    preds: np.ndarray,
    source_prior: np.ndarray,
    class_names: Sequence[str],
    seed: int,
) -> dict[str, Any]:
    """The split's class mix as EM estimates it from its calibrated probabilities alone (as
    if it were a batch from a new site, ``medlens.trust.label_shift``), its true class mix,
    and ECE and Brier of the probabilities adapted to the estimate (decisions unchanged).

    A split with too few cases records ``skipped`` with the reason instead."""
    names = list(class_names)
    try:
        shift = estimate_prior_shift(calibrated, source_prior, seed=seed, what="test split")
    except InputError as exc:
        return {"skipped": exc.reason}
    adapted = shift.transform(calibrated)
    counts = np.bincount(labels, minlength=len(names)) / max(len(labels), 1)
    return {
        **shift.to_dict(names),
        "true_prior": dict(zip(names, map(float, counts), strict=True)),
        "ece_adapted": ece(labels, adapted, preds),
        "brier_adapted": brier(labels, adapted, preds),
    }


def selective_summary(
    labels: np.ndarray, preds: np.ndarray, probs: np.ndarray, threshold: float | None
) -> dict[str, Any]:
    """AURC (error rate, the usual one; balanced and class-weighted risk) of the
    class-stratified order (ours, ``medlens.trust.selective``) and of the max-softmax
    baseline, the error-rate AURC of the decision's probability and of the margin (for the
    record), and the balanced accuracy of the kept cases at each coverage of ``COVERAGES``.

    The headline ``aurc`` is the error-rate one: the balanced risk of the few most confident
    cases is undefined or jumps to 0.5 while they hold cases of one class only, so its area
    rewards an order that alternates the classes early rather than one that makes fewer
    confident mistakes (``aurc_balanced`` is kept beside it)."""
    confidence = stratified_confidence(probs, preds)
    baseline = max_softmax(probs)
    return {
        "confidence": "stratified",
        "aurc": aurc(labels, preds, confidence, "error"),
        "aurc_max_softmax": aurc(labels, preds, baseline, "error"),
        "aurc_balanced": aurc(labels, preds, confidence, "balanced"),
        "aurc_balanced_max_softmax": aurc(labels, preds, baseline, "balanced"),
        "aurc_weighted": aurc(labels, preds, confidence, "weighted"),
        "aurc_weighted_max_softmax": aurc(labels, preds, baseline, "weighted"),
        "aurc_decision": aurc(labels, preds, decision_confidence(probs, preds), "error"),
        "aurc_margin": aurc(labels, preds, margin_confidence(probs, threshold), "error"),
        "coverage": coverage_table(labels, preds, confidence),
    }


def refer_summary(
    band: ReferBand,
    labels: np.ndarray,
    preds: np.ndarray,
    referred: np.ndarray,
) -> dict[str, Any]:
    """How many cases the band (and the out-of-distribution flag) referred, and the balanced
    accuracy of the cases kept against that of all cases."""
    kept = ~referred
    return {
        "n": int(len(labels)),
        "referred": int(referred.sum()),
        "coverage": float(kept.mean()) if len(labels) else float("nan"),
        "balanced_accuracy_all": balanced_accuracy(labels, preds),
        "balanced_accuracy_kept": balanced_accuracy(labels[kept], preds[kept]),
    }


def ood_summary(scores: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    """Cases flagged out of distribution, and the score's median."""
    return {
        "n": int(len(scores)),
        "flagged": int(flagged.sum()),
        "flagged_share": float(flagged.mean()) if len(scores) else float("nan"),
        "median_score": float(np.median(scores)) if len(scores) else float("nan"),
    }
