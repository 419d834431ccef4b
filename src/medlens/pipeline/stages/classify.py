"""The classify stage: class probabilities of each case, from a scikit-learn estimator on a
features stage's rows (``classifier.joblib``), or from a CNN trained on the images or on a
crop stage's crops (an ordinary classification run folder, ``cnn/``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.io_utils import write_atomic
from medlens.pipeline.cells import CellCase
from medlens.pipeline.config import ClassifyStage, EstimatorSpec
from medlens.pipeline.context import StageContext, child_config, train_child, write_png
from medlens.pipeline.folds import validation_carve

ESTIMATOR = "classifier.joblib"
CNN = "cnn"


def estimator_pipeline(stage: ClassifyStage, seed: int) -> Any:
    """``median imputation -> StandardScaler -> selector -> classifier``: the imputation fills
    the features of a region a case lacks with the training median."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from medlens.features.classical import make_feature_pipeline

    spec = stage.estimator or EstimatorSpec(name="svm_rbf")
    selector = stage.selector.as_dict() if stage.selector is not None else None
    inner = make_feature_pipeline(selector, spec.as_dict(), True, seed)
    return Pipeline([("impute", SimpleImputer(strategy="median")), *inner.steps])


def fit_estimator(
    ctx: StageContext, stage: ClassifyStage, features: np.ndarray, labels: np.ndarray
) -> None:
    """Fit and store the stage's estimator."""
    import io

    import joblib

    pipeline = estimator_pipeline(stage, ctx.seed)
    pipeline.fit(features, labels)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    write_atomic(ctx.stage_dir(stage.name) / ESTIMATOR, buffer.getvalue())


def estimator_probabilities(
    ctx: StageContext, stage: ClassifyStage, features: np.ndarray
) -> np.ndarray:
    """Class probabilities ``(N, K)`` from the stored estimator (columns in class order)."""
    import joblib

    pipeline = joblib.load(ctx.run_dir / "stages" / stage.name / ESTIMATOR)
    probs = np.zeros((len(features), len(ctx.cells.class_names)))
    probs[:, pipeline.classes_] = pipeline.predict_proba(features)
    return probs


def fit_cnn(
    ctx: StageContext, stage: ClassifyStage, cases: list[CellCase], images: dict[str, Image],
    test: list[CellCase], test_images: dict[str, Image],
) -> Path:  # fmt: skip
    """Train the stage's CNN on ``cases`` (their crops, or their images), a stratified share
    of them choosing the epoch; the ``test`` cases are its run's test split (scored there,
    never trained on). The run folder is ``stages/<stage>/cnn`` (or ``from_run``, used as it
    is)."""
    if stage.from_run is not None:
        return stage.from_run
    folder = ctx.stage_dir(stage.name)
    labels = np.array([c.label for c in cases])
    val = validation_carve(labels, ctx.data.val_fraction, ctx.seed)
    manifest = folder / "data" / "manifest.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    splits = [(c, "val" if v else "train", images) for c, v in zip(cases, val, strict=True)]
    splits += [(c, "test", test_images) for c in test]
    rows = []
    for case, split, source in splits:
        image = source[case.case_id]
        if "crop_box" not in image.meta:
            path = case.image.resolve()  # the image itself, not a crop of it
        else:
            path = write_png(image.array, folder / "data" / split / f"{case.case_id}.png")
        rows.append({"path": str(path), "label": ctx.cells.class_names[case.label], "split": split})
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    config = child_config(
        stage.name, stage.run, "classification",
        {"format": "csv", "path": str(manifest), "split": "official", "patient_column": None,
         "class_names": list(ctx.cells.class_names)},
        CNN, folder, ctx.seed,
    )  # fmt: skip
    return train_child(ctx, config)


def cnn_probabilities(ctx: StageContext, stage: ClassifyStage, images: list[Image]) -> np.ndarray:
    """Calibrated class probabilities ``(N, K)`` of the stored CNN for each image."""
    from medlens.inference.loaded_run import load_run, predict_images

    run = load_run(stage.from_run or ctx.run_dir / "stages" / stage.name / CNN)
    return predict_images(run, images)
