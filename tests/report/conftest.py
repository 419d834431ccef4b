"""A synthetic run folder, written the way the trainer writes one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medlens.metrics import choose_threshold, evaluate_predictions, predict_labels


def _probabilities(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(0.0, 1.0, (len(y), k))
    logits[np.arange(len(y)), y] += 1.5  # informative but imperfect
    prob = np.exp(logits)
    return prob / prob.sum(axis=1, keepdims=True)


def write_run_folder(
    root: Path, class_names: list[str], sizes: dict[str, int], seed: int = 0, skipped: int = 1
) -> Path:
    """Write config.yaml, labels.json, metrics.json, predictions.csv, history.csv,
    data_summary.json and preprocessing.json for a model whose predictions are synthetic."""
    rng = np.random.default_rng(seed)
    k = len(class_names)
    run = root / "demo-run"
    run.mkdir(parents=True)
    labels = {s: rng.integers(0, k, n) for s, n in sizes.items()}
    probs = {s: _probabilities(y, k, rng) for s, y in labels.items()}
    if k == 2:
        threshold = choose_threshold(labels["val"], probs["val"][:, 1], "youden")
        method = "youden"
    else:
        threshold, method = None, "argmax"
    splits = {
        s: evaluate_predictions(
            labels[s], probs[s], class_names, threshold, n_bootstrap=200, seed=0
        )
        for s in ("val", "test")
    }
    metrics = {
        "task": "classification",
        "class_names": class_names,
        "threshold": threshold,
        "threshold_method": method,
        "splits": splits,
        "best_epoch": 4,
        "train_seconds": 123.4,
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run / "labels.json").write_text(
        json.dumps({"class_names": class_names, "threshold": threshold, "threshold_method": method})
    )
    config = {
        "name": "demo-run",
        "seed": seed,
        "data": {"format": "medmnist", "path": "/data/pneumoniamnist.npz"},
        "model": {"name": "resnet18", "pretrained": "imagenet", "strategy": "full"},
        "train": {"epochs": 6, "threshold": method},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = []
    for split in ("val", "test"):
        pred = predict_labels(probs[split], threshold)
        for i, (y, p, yhat) in enumerate(zip(labels[split], probs[split], pred, strict=True)):
            row = {"case_id": f"{split}/{i:05d}", "split": split, "label": int(y)}
            row.update({f"prob_{name}": p[c] for c, name in enumerate(class_names)})
            row.update({"pred": int(yhat), "sex": "F" if i % 2 else "M"})
            rows.append(row)
    pd.DataFrame(rows).to_csv(run / "predictions.csv", index=False)
    epochs = np.arange(1, 7)
    pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": 0.7 / epochs,
            "val_loss": 0.6 / epochs + 0.05 * epochs,
            "val_auc": 0.7 + 0.03 * epochs,
            "lr": 1e-3 * 0.5**epochs,
            "seconds": np.full(6, 20.5),
        }
    ).to_csv(run / "history.csv", index=False)
    summary = {
        "splits": {
            s: {
                "n": n,
                "class_counts": {
                    name: int((labels[s] == c).sum()) if s in labels else n // k
                    for c, name in enumerate(class_names)
                },
            }
            for s, n in sizes.items()
        },
        "source": "pneumoniamnist.npz (MedMNIST v2)",
        "skipped_files": [
            {"file": f"bad_{i}.png", "reason": "truncated PNG"} for i in range(skipped)
        ],
    }
    (run / "data_summary.json").write_text(json.dumps(summary))
    preprocessing = [
        {"name": "scale_intensity", "low": 0.0, "high": 1.0},
        {"name": "resize", "size": [28, 28]},
    ]
    (run / "preprocessing.json").write_text(json.dumps(preprocessing))
    return run


@pytest.fixture
def binary_run(tmp_path: Path) -> Path:
    return write_run_folder(
        tmp_path, ["normal", "pneumonia"], {"train": 400, "val": 120, "test": 150}
    )


@pytest.fixture
def multiclass_run(tmp_path: Path) -> Path:
    return write_run_folder(
        tmp_path, ["benign", "malignant", "normal"], {"train": 300, "val": 90, "test": 90}
    )


#: Names a run folder from elsewhere could hold: raw HTML, a Markdown link, a heading.
HTML_CLASS = "<img src=x onerror=alert(1)>"
LINK_MODEL = "[resnet](javascript:alert(1))"
HEADING_RUN = "run`\n# Injected heading"


@pytest.fixture
def crafted_run(tmp_path: Path) -> Path:
    """A run folder whose class, model and run names and data source are markup."""
    run = write_run_folder(tmp_path, ["normal", HTML_CLASS], {"train": 60, "val": 40, "test": 40})
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["name"] = HEADING_RUN
    config["model"]["name"] = LINK_MODEL
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    summary = json.loads((run / "data_summary.json").read_text())
    summary["source"] = "/data/*x*\n## Injected source <b>bold</b>"
    (run / "data_summary.json").write_text(json.dumps(summary))
    return run
