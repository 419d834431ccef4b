"""The figures of a report: ROC, precision-recall, confusion matrix, reliability, learning curves.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot:
nothing is left open, no window can appear, and plotting is thread-safe (the service draws
too). Each function writes one PNG (atomically) and returns its path.
``new_figure``, ``save_figure`` and ``show_message`` are the helpers every report figure
(segmentation, cross-validation) is drawn with.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from medlens.errors import InputError
from medlens.io_utils import write_atomic
from medlens.metrics import METRICS
from medlens.metrics.calibration import N_BINS, calibration_gap, reliability_target
from medlens.metrics.inputs import as_labels, check_predictions
from medlens.report.formatting import format_ci, format_level

DPI = 120


def new_figure(width: float = 5.0, height: float = 4.6, **subplots: Any) -> tuple[Figure, Any]:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas (no pyplot), with
    constrained layout, and its axes from ``Figure.subplots(**subplots)`` (one ``Axes`` by
    default; ``nrows``/``ncols`` give an array)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure drawn as PNG bytes; the figure is cleared afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    fig.clear()
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write the figure as a PNG at ``path`` (atomically; the parent folder is created) and
    clear it; returns ``path``."""
    return write_atomic(path, figure_png(fig))


def show_message(ax: Axes, text: str) -> None:
    """Put ``text`` in the middle of an empty ``ax`` (no ticks), in place of a plot that
    cannot be drawn."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _headline(
    title: str | None, label: str, value: float, ci: tuple[float, float] | None, level: float
) -> str:
    text = f"{label} {value:.3f}" if np.isfinite(value) else f"{label} undefined"
    if ci is not None and np.isfinite(value):
        text += f" ({format_level(level)} CI {format_ci(*ci)})"
    return f"{title}\n{text}" if title else text


def _curves(
    kind: str, truth: np.ndarray, prob: np.ndarray, class_names: Sequence[str], ax: Axes
) -> bool:
    """Draw ROC or PR curves (one per class one-vs-rest when multi-class); False if undefined."""
    display = RocCurveDisplay if kind == "roc" else PrecisionRecallDisplay
    k = prob.shape[1]
    targets = [1] if k == 2 else list(range(k))
    drawn = False
    for c in targets:
        positive = truth == c
        if positive.all() or not positive.any():
            continue
        name = f"{class_names[c]} vs {class_names[0]}" if k == 2 else f"{class_names[c]} vs rest"
        # One chance line: the diagonal for ROC; for PR the prevalence, which is per class.
        chance = not drawn and (kind == "roc" or k == 2)
        display.from_predictions(
            positive, prob[:, c], pos_label=True, name=name, ax=ax, plot_chance_level=chance
        )
        drawn = True
    return drawn


def plot_roc(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    class_names: Sequence[str],
    path: str | Path,
    auc_ci: tuple[float, float] | None = None,
    ci_level: float = 0.95,
    title: str | None = None,
) -> Path:
    """ROC curve of p(class 1) (binary) or one-vs-rest curves per class, AUC (and its CI) on top.

    Args:
        y_true: true class indices ``(N,)``; y_prob: probabilities ``(N, K)``.
        auc_ci: the ``(low, high)`` bootstrap interval of the AUC from metrics.json.
    """
    truth, prob, _ = check_predictions(y_true, y_prob)
    fig, ax = new_figure()
    if _curves("roc", truth, prob, class_names, ax):
        ax.set_xlabel("1 - specificity (false-positive rate)")
        ax.set_ylabel("sensitivity (true-positive rate)")
        ax.legend(loc="lower right", fontsize="small")
    else:
        show_message(ax, "ROC curve undefined: the split holds a single class")
    auc = METRICS.get("auc")(truth, prob, prob.argmax(axis=1))
    ax.set_title(
        _headline(title, "AUC" if prob.shape[1] == 2 else "macro AUC", auc, auc_ci, ci_level)
    )
    return save_figure(fig, path)


def plot_pr(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    class_names: Sequence[str],
    path: str | Path,
    ap_ci: tuple[float, float] | None = None,
    ci_level: float = 0.95,
    title: str | None = None,
) -> Path:
    """Precision-recall curve(s) with the prevalence line; average precision (and CI) on top."""
    truth, prob, _ = check_predictions(y_true, y_prob)
    fig, ax = new_figure()
    if _curves("pr", truth, prob, class_names, ax):
        ax.set_xlabel("recall (sensitivity)")
        ax.set_ylabel("precision (PPV)")
        ax.legend(loc="lower left", fontsize="small")
    else:
        show_message(ax, "Precision-recall curve undefined: the split holds a single class")
    ap = METRICS.get("average_precision")(truth, prob, prob.argmax(axis=1))
    ax.set_title(_headline(title, "AP" if prob.shape[1] == 2 else "macro AP", ap, ap_ci, ci_level))
    return save_figure(fig, path)


def plot_confusion(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    class_names: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Confusion matrix of case counts (rows: true class, columns: predicted class)."""
    k = len(class_names)
    truth = as_labels(y_true, k, len(np.asarray(y_true)), "y_true")
    pred = as_labels(y_pred, k, len(truth), "y_pred")
    fig, ax = new_figure(4.2 + 0.4 * k, 3.8 + 0.4 * k)
    ConfusionMatrixDisplay.from_predictions(
        truth,
        pred,
        labels=list(range(k)),
        display_labels=list(class_names),
        ax=ax,
        cmap="Blues",
        colorbar=False,
        values_format="d",
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix")
    return save_figure(fig, path)


def plot_reliability(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    path: str | Path,
    n_bins: int = N_BINS,
    title: str | None = None,
) -> Path:
    """Reliability diagram (15 equal-width bins) over a histogram of the predicted probabilities.

    Binary: p(class 1) against the observed fraction of class 1. Multi-class: confidence of the
    arg-max class against its accuracy. The ECE is in the title.
    """
    truth, prob, _ = check_predictions(y_true, y_prob)
    confidence, outcome = reliability_target(truth, prob)
    fig, (ax, hist) = new_figure(5.0, 5.6, nrows=2, sharex=True, height_ratios=[3, 1])
    CalibrationDisplay.from_predictions(
        outcome.astype(int),
        confidence,
        n_bins=n_bins,
        strategy="uniform",
        pos_label=1,
        ax=ax,
        name="model",
    )
    binary = prob.shape[1] == 2
    ax.set_xlabel("")
    ax.set_ylabel("observed fraction of class 1" if binary else "accuracy of the predicted class")
    ax.legend(loc="upper left", fontsize="small")
    ece = calibration_gap(confidence, outcome, n_bins)
    ax.set_title(_headline(title, f"ECE ({n_bins} bins)", ece, None, 0.95))
    hist.hist(confidence, bins=np.linspace(0, 1, n_bins + 1), color="0.5")
    hist.set_xlabel("predicted p(class 1)" if binary else "confidence of the predicted class")
    hist.set_ylabel("cases")
    return save_figure(fig, path)


def plot_learning_curves(
    history: pd.DataFrame, path: str | Path, best_epoch: int | None = None, title: str | None = None
) -> Path:
    """Loss (train and validation), the validation score (AUC or Dice) and learning rate per epoch.

    Args:
        history: one row per epoch with columns ``epoch`` and any of ``train_loss``,
            ``val_loss``, ``val_auc`` (classification), ``val_dice`` (segmentation), ``lr``
            (missing ones show as "not recorded").
        best_epoch: marked with a vertical line (the epoch whose weights were kept).
    """
    if "epoch" not in history.columns:
        raise InputError("history", "missing column epoch")
    fig, axes = new_figure(11.0, 3.6, ncols=3)
    epoch = history["epoch"].to_numpy()
    scores = [("val_auc", "validation AUC"), ("val_dice", "validation Dice")]
    recorded = [label for c, label in scores if c in history and history[c].notna().any()]
    panels = [
        (axes[0], "loss", [("train_loss", "train"), ("val_loss", "validation")]),
        (axes[1], " / ".join(recorded) or "validation AUC", scores),
        (axes[2], "learning rate", [("lr", "learning rate")]),
    ]
    for ax, ylabel, series in panels:
        present = [(c, label) for c, label in series if c in history and history[c].notna().any()]
        if not present:
            show_message(ax, f"{ylabel}: not recorded")
            continue
        for column, label in present:
            ax.plot(
                epoch, history[column].to_numpy(dtype=float), marker="o", markersize=3, label=label
            )
        if best_epoch is not None:
            ax.axvline(
                best_epoch,
                color="0.4",
                linestyle="--",
                linewidth=1,
                label=f"best epoch {best_epoch}",
            )
        if ylabel == "learning rate" and (history["lr"] > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
