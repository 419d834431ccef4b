"""Each plot writes a valid PNG, closes what it opened, and survives degenerate inputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlens.errors import InputError
from medlens.report.plots import (
    plot_confusion,
    plot_learning_curves,
    plot_pr,
    plot_reliability,
    plot_roc,
)


def _assert_png(path: Path, min_width: int = 300) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width  # ~5 in at 120 dpi
    assert not list(path.parent.glob(".*.tmp")), "a temporary file was left behind"


def _predictions(k: int, n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, prob


@pytest.mark.parametrize("k", [2, 3])
def test_every_plot_writes_a_png_and_leaves_no_figure_open(tmp_path: Path, k: int) -> None:
    y, prob = _predictions(k)
    names = [f"class {c}" for c in range(k)]
    paths = [
        plot_roc(y, prob, names, tmp_path / "roc.png", auc_ci=(0.6, 0.7)),
        plot_pr(y, prob, names, tmp_path / "pr.png", ap_ci=(0.6, 0.7)),
        plot_confusion(y, prob.argmax(axis=1), names, tmp_path / "confusion.png"),
        plot_reliability(y, prob, tmp_path / "reliability.png"),
    ]
    assert paths == [
        tmp_path / f for f in ("roc.png", "pr.png", "confusion.png", "reliability.png")
    ]
    for path in paths:
        _assert_png(path)
    assert plt.get_fignums() == []


def test_single_class_split_still_draws(tmp_path: Path) -> None:
    y = np.ones(20, dtype=int)
    p1 = np.linspace(0.05, 0.95, 20)
    prob = np.column_stack([1 - p1, p1])
    for path in (
        plot_roc(y, prob, ["normal", "pneumonia"], tmp_path / "roc.png"),
        plot_pr(y, prob, ["normal", "pneumonia"], tmp_path / "pr.png"),
        plot_reliability(y, prob, tmp_path / "reliability.png"),
        plot_confusion(y, (p1 >= 0.5).astype(int), ["normal", "pneumonia"], tmp_path / "cm.png"),
    ):
        _assert_png(path)


def test_learning_curves_with_missing_columns(tmp_path: Path) -> None:
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.7, 0.6]}
    )
    path = plot_learning_curves(history, tmp_path / "plots" / "learning_curves.png", best_epoch=3)
    _assert_png(path, min_width=900)  # three panels side by side
    with pytest.raises(InputError, match="epoch"):
        plot_learning_curves(history.drop(columns="epoch"), tmp_path / "bad.png")


def test_plot_rejects_malformed_probabilities(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="sum to 1"):
        plot_roc([0, 1], [[0.9, 0.9], [0.2, 0.8]], ["a", "b"], tmp_path / "roc.png")
    assert not (tmp_path / "roc.png").exists()


def test_plot_overwrites_an_existing_file(tmp_path: Path) -> None:
    y, prob = _predictions(2)
    target = tmp_path / "roc.png"
    target.write_bytes(b"stale")
    plot_roc(y, prob, ["a", "b"], target)
    _assert_png(target)
