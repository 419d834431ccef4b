"""What ``metrics.json`` records under ``trust``: calibration before and after, the refer
band's effect, selective prediction (AURC, balanced accuracy by coverage), the
out-of-distribution flags, per split, and the test split's class mix estimated without its
labels with the calibration after adapting to it. Plain numbers, JSON-ready.

Which cases a class-mix estimate uses, and the estimate itself, are here too
(``prior_shift_cases``, ``adapt_batch``): the cases not flagged out of distribution, for a
run's own test split and for ``medlens predict --adapt-prior`` alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError
from medlens.metrics.calibration import brier, ece, ece_top_label
from medlens.metrics.threshold import predict_labels
from medlens.trust.calibrators import Calibrator
from medlens.trust.label_shift import MIN_CASES, PriorShift, estimate_prior_shift
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


class BatchPriorShift(NamedTuple):
    """A batch's class mix estimated from the cases ``prior_shift_cases`` keeps
    (``adapt_batch``).

    Attributes:
        shift: the estimate (``medlens.trust.label_shift.PriorShift``).
        used: ``(N,)`` the cases the estimate used (not flagged out of distribution).
        adapted: ``(N, K)`` the probabilities adapted to the estimate; NaN for the cases
            left out, which keep their calibrated probabilities and get no adapted ones.
    """

    shift: PriorShift
    used: np.ndarray
    adapted: np.ndarray

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        """The estimate's record (``PriorShift.to_dict``: ``n_cases`` counts the cases used)
        and ``out_of_distribution_left_out``, the flagged cases it left out."""
        return {
            **self.shift.to_dict(list(class_names)),
            "out_of_distribution_left_out": int((~self.used).sum()),
        }


def prior_shift_cases(n_cases: int, ood: ArrayLike | None) -> np.ndarray:
    """Which of a batch's ``n_cases`` cases its class-mix estimate uses (``(N,)`` bool): those
    not flagged out of distribution (``ood``: the run's flag per case, as ``predictions.csv``'s
    ``ood`` column has it), every case for a run without the score (``ood`` None).

    A flagged case breaks the estimate's assumption that only the class mix changed, so it is
    left out, and gets no adapted probability. The rule of ``medlens predict --adapt-prior``
    (``medlens.inference.classify``) and of a run's own test split (``prior_shift_summary``).

    Raises:
        InputError: ``ood`` that does not hold one flag per case.
    """
    if ood is None:
        return np.ones(n_cases, dtype=bool)
    flags = np.asarray(ood)
    if flags.shape != (n_cases,):
        raise InputError(
            "out-of-distribution flags", f"expected {n_cases} flags, got shape {flags.shape}"
        )
    return ~flags.astype(bool)


def adapt_batch(
    probs: ArrayLike,
    source_prior: ArrayLike,
    ood: ArrayLike | None,
    seed: int = 0,
    what: str = "probabilities",
) -> BatchPriorShift:
    """Estimate the class mix of a batch of calibrated probabilities ``(N, K)`` from the cases
    ``prior_shift_cases`` keeps (``medlens.trust.label_shift.estimate_prior_shift``), and
    adapt those cases' probabilities to it.

    Args:
        source_prior: the class shares ``probs`` assume (``read_source_prior`` of the run).
        ood: the run's out-of-distribution flag per case; None: the run has no score.
        seed: of the estimate's bootstrap interval.
        what: names the batch in errors (a file, a split).

    Raises:
        InputError: every case flagged out of distribution, fewer than ``MIN_CASES`` left
            once the flagged ones are left out, or malformed probabilities or shares.
    """
    p = np.asarray(probs, dtype=float)
    used = prior_shift_cases(len(p), ood)
    left_out = int((~used).sum())
    if not used.any():  # checked here: no case at all is no (N, K) array to check
        raise InputError(
            what,
            f"all {len(p)} cases were flagged out of distribution, so none is left to "
            "estimate the class mix from"
            if len(p)
            else f"0 cases are too few to estimate their class mix (at least {MIN_CASES})",
        )
    try:
        shift = estimate_prior_shift(p[used], source_prior, seed=seed, what=what)
    except InputError as exc:
        if not left_out:
            raise
        raise InputError(
            what, f"{exc.reason}, once {left_out} flagged out of distribution are left out"
        ) from exc
    adapted = np.full(p.shape, np.nan)
    adapted[used] = shift.transform(p[used])
    return BatchPriorShift(shift, used, adapted)


def prior_shift_summary(
    labels: np.ndarray,
    calibrated: np.ndarray,
    preds: np.ndarray,
    source_prior: np.ndarray,
    class_names: Sequence[str],
    seed: int,
    *,
    ood: np.ndarray | None,
) -> dict[str, Any]:
    """The split's class mix as EM estimates it from its calibrated probabilities alone (as
    if it were a batch from a new site, ``adapt_batch``), from the cases ``medlens predict
    --adapt-prior`` would use: those not flagged out of distribution (``ood``; None: a run
    without the score, every case). ``n_cases`` counts the cases used and
    ``out_of_distribution_left_out`` the flagged ones left out.

    Over the cases used (the flagged ones get no adapted probability): their true class mix
    (``true_prior``), ECE and Brier of the probabilities adapted to the estimate
    (``ece_adapted``, ``brier_adapted``) and of the calibrated ones (``ece_calibrated``,
    ``brier_calibrated``), to compare like with like; decisions unchanged.

    A split with too few cases left, or every case flagged, records ``skipped`` with the
    reason instead (and the two counts)."""
    names = list(class_names)
    try:
        batch = adapt_batch(calibrated, source_prior, ood, seed=seed, what="test split")
    except InputError as exc:
        used = prior_shift_cases(len(calibrated), ood)
        return {
            "skipped": exc.reason,
            "n_cases": int(used.sum()),
            "out_of_distribution_left_out": int((~used).sum()),
        }
    used = batch.used
    y, p, adapted, d = labels[used], calibrated[used], batch.adapted[used], preds[used]
    counts = np.bincount(y, minlength=len(names)) / max(len(y), 1)
    return {
        **batch.to_dict(names),
        "true_prior": dict(zip(names, map(float, counts), strict=True)),
        "ece_adapted": ece(y, adapted, d),
        "brier_adapted": brier(y, adapted, d),
        "ece_calibrated": ece(y, p, d),
        "brier_calibrated": brier(y, p, d),
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
