"""Knowing when not to trust a prediction: calibration, the refer band, selective
prediction, out-of-distribution flags and per-image segmentation uncertainty, over seeds.

For each seed:

- PneumoniaMNIST (configs/pneumoniamnist_resnet18.yaml) and AdrenalMNIST3D
  (configs/adrenalmnist3d_small_cnn.yaml) are trained under a wall-time budget with the
  default trust settings (temperature scaling, a coverage refer band, the Mahalanobis score)
  and each recipe's threshold rule (``train.threshold``: youden_plateau in both; the report
  records it, as results/uncertainty_15min_adrenal_fixed05.json ran AdrenalMNIST3D's recipe
  at the fixed 0.5, see benchmarks/adrenal_threshold_cv.py). From each run folder: the test
  ECE before and after calibration (15 equal-width bins on p(class 1) against the share of
  class 1, ``medlens.metrics.calibration``; since 2026-12-05 the top-label ECE of Guo et al.
  is recorded beside it, not a key) and the test AUC of both (calibration is fitted on
  validation only); the balanced accuracy of the test cases kept at 80% coverage (the run's
  class-stratified order: the same share of each decided class, most probable decision
  first) against all of them,
  and beside it that of the other orders (the decision's probability, the margin, plain
  max-softmax) on the same predictions; AURC (error rate) of the run's order against plain
  max-softmax.
- Out of distribution (the PneumoniaMNIST run): ``medlens predict`` on two shifts, scored
  against the run's own in-distribution test rows: the inverted-contrast, blurred "site B"
  of benchmarks/group_reweighting.py applied to the test images, and another modality:
  seeded crops of the DRIVE fundus photographs (grey), resized to 28 px. AUROC of the score,
  and the share flagged at the run's threshold (5% validation false alarms).
- Segmentation: a U-Net on DRIVE (configs/drive_unet.yaml), then ``medlens predict
  --uncertainty tta`` on the 20 test images: Spearman rho between each image's uncertainty
  (1 - the Dice its calibrated probabilities expect) and its Dice against the manual mask.
- The threshold rule: the spread across seeds of the PneumoniaMNIST threshold
  (youden_plateau on calibrated probabilities), beside the plain Youden arg-max on the raw
  and on the calibrated probabilities, and the spread of the test sensitivity and
  specificity each gives.

    python benchmarks/uncertainty.py            # 3 seeds, 10 + 10 + 15 min per seed
    python benchmarks/uncertainty.py --quick    # 2 seeds, 1-2 minute budgets: a smoke test
    python benchmarks/uncertainty.py --keep-runs RUNS          # ... and keep what is needed to
    python benchmarks/uncertainty.py --refigure RUNS --out R   # recompute the figures of R
        [--datasets pneumonia]                                 # (of these datasets only)
    python benchmarks/uncertainty.py --retrain adrenal --out R # train that dataset's seeds
                                                               # again (its recipe changed)

Writes benchmarks/results/uncertainty.json (``--quick``: uncertainty_quick.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image as PILImage

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info, shared_path  # noqa: E402
from group_reweighting import site_b  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

RECIPES = {
    "pneumonia": REPO / "configs" / "pneumoniamnist_resnet18.yaml",
    "adrenal": REPO / "configs" / "adrenalmnist3d_small_cnn.yaml",
    "drive": REPO / "configs" / "drive_unet.yaml",
}
DRIVE = SHARED_DATA / "drive_retina_vessels"
CROPS_PER_IMAGE = 20


def recipe_data(kind: str) -> Path:
    """The data the recipe of ``kind`` trains on, under ``SHARED_DATA``."""
    import yaml

    if kind == "drive":
        return DRIVE
    return shared_path(yaml.safe_load(RECIPES[kind].read_text())["data"]["path"])


def recipe(kind: str, seed: int, minutes: float, out: Path) -> dict[str, Any]:
    """The recipe of configs/ with this run's seed, budget and folders."""
    import yaml

    cfg = yaml.safe_load(RECIPES[kind].read_text())
    cfg.update(name=f"{kind}-s{seed}", seed=seed, output_dir=str(out))
    cfg["data"]["path"] = str(recipe_data(kind))
    cfg["train"]["max_minutes"] = minutes
    cfg.setdefault("evaluate", {})["n_bootstrap"] = 0
    return cfg


def recipe_threshold(kind: str) -> str:
    """The recipe's threshold rule (``train.threshold``), as the report records it."""
    import yaml

    train_cfg = yaml.safe_load(RECIPES[kind].read_text())["train"]
    rule = str(train_cfg.get("threshold", "youden_plateau"))
    return f"fixed {train_cfg.get('fixed_threshold', 0.5)}" if rule == "fixed" else rule


def train(kind: str, seed: int, minutes: float, out: Path) -> Path:
    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    return train_and_report(
        parse_config(recipe(kind, seed, minutes, out)), overwrite=True, progress=False
    )


def calibrator_comparison(
    val: pd.DataFrame, test: pd.DataFrame, names: list[str], seed: int
) -> dict[str, Any]:
    """Every calibrator on the run's raw probabilities: cross-fitted on validation (5 folds;
    what a user can choose by, no test labels), then fitted on all of validation and applied
    to test once (test ECE, its drop from the raw probabilities, |dAUC|), and the same after
    adapting to the test split's class mix estimated without its labels (EM from the mean
    calibrated validation probability: Alexandari et al.'s recipe with ``bcts``).
    ``chosen``: the lowest cross-fitted validation log loss."""
    from sklearn.metrics import roc_auc_score

    from medlens.metrics.calibration import ece
    from medlens.trust.calibration_choice import best_by_log_loss, cross_fitted_scores
    from medlens.trust.calibrators import fit_calibrator
    from medlens.trust.label_shift import estimate_prior_shift, source_prior

    columns = [f"raw_prob_{n}" for n in names]
    val_p, val_y = val[columns].to_numpy(), val["label"].to_numpy(dtype=int)
    test_p, test_y = test[columns].to_numpy(), test["label"].to_numpy(dtype=int)
    table = cross_fitted_scores(val_p, val_y, seed=seed)
    before = ece(test_y, test_p, test_p.argmax(axis=1))
    auc_raw = roc_auc_score(test_y, test_p[:, 1])
    methods = {}
    for method, held_out in table.items():
        calibrator = fit_calibrator(method, val_p, val_y)
        calibrated = calibrator.transform(test_p)
        after = ece(test_y, calibrated, calibrated.argmax(axis=1))
        prior = source_prior(calibrator.transform(val_p))
        adapted = estimate_prior_shift(calibrated, prior, n_bootstrap=0).transform(calibrated)
        after_adapted = ece(test_y, adapted, adapted.argmax(axis=1))
        methods[method] = {
            **{f"val_cv_{k}": v for k, v in held_out.items() if k != "folds"},
            "test_ece": after,
            "ece_rel_drop": 1 - after / before,
            "auc_change": abs(roc_auc_score(test_y, calibrated[:, 1]) - auc_raw),
            "test_ece_prior_adapted": after_adapted,
            "ece_rel_drop_prior_adapted": 1 - after_adapted / before,
        }
    return {"chosen": best_by_log_loss(table), "methods": methods}


def _raw_ece_of_estimate(
    test: pd.DataFrame, shift: dict[str, Any], names: list[str], calibration: dict[str, Any]
) -> float:
    """The raw test ECE over the cases the run's class-mix estimate used, which its
    ``ece_adapted`` is measured on: since 2026-12-05 the cases not flagged out of
    distribution (``out_of_distribution_left_out`` recorded); before, every test case (the
    run's recorded ``ece_before``)."""
    from medlens.metrics.calibration import ece

    if "out_of_distribution_left_out" not in shift:
        return float(calibration["ece_before"])
    used = test[test["ood"] == 0]
    raw = used[[f"raw_prob_{n}" for n in names]].to_numpy()
    return float(ece(used["label"].to_numpy(), raw, raw.argmax(axis=1)))


def classification_figures(run: Path) -> dict[str, Any]:
    """Calibration, selective prediction and the threshold of one classification run."""
    from sklearn.metrics import roc_auc_score

    from medlens.metrics.threshold import choose_threshold
    from medlens.trust.refer import choose_band
    from medlens.trust.selective import (
        aurc,
        balanced_accuracy,
        coverage_table,
        decision_confidence,
        margin_confidence,
        max_softmax,
        stratified_confidence,
    )

    metrics = json.loads((run / "metrics.json").read_text())
    trust = metrics["trust"]
    table = pd.read_csv(run / "predictions.csv")
    names = metrics["class_names"]
    test, val = table[table["split"] == "test"], table[table["split"] == "val"]
    positive = names[1]
    auc_raw = roc_auc_score(test["label"], test[f"raw_prob_{positive}"])
    auc_cal = roc_auc_score(test["label"], test[f"prob_{positive}"])
    calibration = trust["calibration"]["splits"]["test"]
    coverage = {row["coverage"]: row for row in trust["selective"]["test"]["coverage"]}
    selective = trust["selective"]["test"]

    probs = test[[f"prob_{n}" for n in names]].to_numpy()
    labels, preds = test["label"].to_numpy(), test["pred"].to_numpy()
    orders = {
        "decision": decision_confidence(probs, preds),
        "margin": margin_confidence(probs, float(metrics["threshold"])),
        "max_softmax": max_softmax(probs),
    }
    other_gains = {}
    for name, score in orders.items():
        kept = coverage_table(labels, preds, score, coverages=(0.8,))[0]["balanced_accuracy"]
        other_gains[f"bal_acc_gain_at_80_cov_{name}"] = 100 * (
            kept - coverage[1.0]["balanced_accuracy"]
        )
    weighted = aurc(labels, preds, stratified_confidence(probs, preds), "weighted")
    weighted_baseline = aurc(labels, preds, orders["max_softmax"], "weighted")
    # The refer band again from the validation split with today's rule, so --refigure gives
    # the band of the code as it is; the band the run itself recorded is kept beside it.
    # band_*: the band alone; refer_recorded_*: what the run referred (band or OOD flag).
    recorded = trust["refer"]["band"]
    band = choose_band(
        "coverage",
        val["label"].to_numpy(),
        val[[f"prob_{n}" for n in names]].to_numpy(),
        float(metrics["threshold"]),
        coverage=float((recorded.get("targets") or {}).get("coverage", 0.9)),
    )
    kept_by_band = ~band.refers(probs)
    band_kept = balanced_accuracy(labels[kept_by_band], preds[kept_by_band])

    def rates(threshold: float, column: str) -> tuple[float, float]:
        called = test[column] >= threshold
        return float(called[test["label"] == 1].mean()), float((~called)[test["label"] == 0].mean())

    youden_raw = choose_threshold(val["label"], val[f"raw_prob_{positive}"], "youden")
    youden_cal = choose_threshold(val["label"], val[f"prob_{positive}"], "youden")
    rule = float(metrics["threshold"])
    comparison = calibrator_comparison(val, test, names, seed=0)
    shift = trust["calibration"].get("prior_shift") or {}
    adapted = (
        {
            # the test split read as one unlabelled batch from a new site (medlens.trust.
            # label_shift): not calibration fitted on validation, so beside the headline
            "test_ece_prior_adapted": shift["ece_adapted"],
            "ece_rel_drop_prior_adapted": 1
            - shift["ece_adapted"] / _raw_ece_of_estimate(test, shift, names, calibration),
            "prior_source": shift["source_prior"][positive],
            "prior_estimated": shift["target_prior"][positive],
            "prior_true": shift["true_prior"][positive],
            "prior_estimated_95ci": shift["target_prior_95ci"][positive],
            # the interval covers sampling noise only: a miss says more than the mix changed
            "prior_true_in_interval": bool(
                shift["target_prior_95ci"][positive][0]
                <= shift["true_prior"][positive]
                <= shift["target_prior_95ci"][positive][1]
            ),
        }
        if "ece_adapted" in shift
        else {}
    )
    from medlens.metrics.calibration import ece_top_label

    # the keys' ECE reads p(class 1) (medlens.metrics.calibration); the top-label ECE of
    # Guo et al. (the arg-max class's confidence) is recorded beside it, not a key
    top_before = ece_top_label(labels, test[[f"raw_prob_{n}" for n in names]].to_numpy())
    top_after = ece_top_label(labels, probs)
    return {
        **adapted,
        "test_ece_top_label_before": top_before,
        "test_ece_top_label_after": top_after,
        "ece_top_label_rel_drop": 1 - top_after / top_before,
        "calibrators": comparison,
        "temperature": trust["calibration"].get("temperature"),
        "test_ece_before": calibration["ece_before"],
        "test_ece_after": calibration["ece_after"],
        "ece_rel_drop": 1 - calibration["ece_after"] / calibration["ece_before"],
        "test_auc_raw": auc_raw,
        "test_auc_calibrated": auc_cal,
        "auc_change": abs(auc_cal - auc_raw),
        "bal_acc_all": coverage[1.0]["balanced_accuracy"],
        "bal_acc_at_80_cov": coverage[0.8]["balanced_accuracy"],
        "bal_acc_gain_at_80_cov": 100
        * (coverage[0.8]["balanced_accuracy"] - coverage[1.0]["balanced_accuracy"]),
        **other_gains,
        "selective_order": selective.get("confidence"),
        "aurc": selective["aurc"],
        "aurc_max_softmax": selective["aurc_max_softmax"],
        "aurc_gain_vs_maxsoftmax": 1 - selective["aurc"] / selective["aurc_max_softmax"],
        "aurc_decision": selective["aurc_decision"],
        "aurc_margin": selective["aurc_margin"],
        "aurc_balanced": selective["aurc_balanced"],
        "aurc_balanced_max_softmax": selective["aurc_balanced_max_softmax"],
        "aurc_weighted": weighted,
        "aurc_weighted_max_softmax": weighted_baseline,
        "aurc_weighted_gain_vs_maxsoftmax": 1 - weighted / weighted_baseline,
        "refer_band": band.to_dict(),
        "band_test_coverage": float(kept_by_band.mean()),
        "band_bal_acc_gain": 100 * (band_kept - coverage[1.0]["balanced_accuracy"]),
        "refer_band_recorded": recorded,
        "refer_recorded_bal_acc_gain": 100
        * (
            trust["refer"]["splits"]["test"]["balanced_accuracy_kept"]
            - trust["refer"]["splits"]["test"]["balanced_accuracy_all"]
        ),
        "threshold_rule": rule,
        "threshold_youden_raw": youden_raw,
        "threshold_youden_calibrated": youden_cal,
        "sens_spec_rule": rates(rule, f"prob_{positive}"),
        "sens_spec_youden_raw": rates(youden_raw, f"raw_prob_{positive}"),
        "val_auc": metrics["splits"]["val"]["metrics"]["auc"]["value"],
        # What benchmarks/classification.py reports of a run (the same recipe and training;
        # the full-budget targets are on these when --minutes is 15)
        "test_auc": metrics["splits"]["test"]["metrics"]["auc"]["value"],
        "test_acc_at_val_threshold": metrics["splits"]["test"]["metrics"]["accuracy"]["value"],
        "test_acc_at_0.5": metrics["splits"]["test"]["metrics_at_0.5"]["accuracy"],
        "epochs": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "train_minutes": metrics["train_seconds"] / 60,
    }


def _write_pngs(images: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        PILImage.fromarray(image).save(folder / f"{i:05d}.png")
    return folder


def fundus_crops(seed: int) -> np.ndarray:
    """Seeded square crops (a quarter to a half of the shorter side) of every DRIVE
    photograph, in grey, resized to 28 px: another modality at PneumoniaMNIST's size."""
    rng = np.random.default_rng(seed)
    crops = []
    for path in sorted(DRIVE.glob("*/images/*.tif")):
        grey = np.asarray(PILImage.open(path).convert("L"))
        h, w = grey.shape
        for _ in range(CROPS_PER_IMAGE):
            side = int(rng.integers(min(h, w) // 4, min(h, w) // 2))
            y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            crop = PILImage.fromarray(grey[y : y + side, x : x + side])
            crops.append(np.asarray(crop.resize((28, 28), PILImage.Resampling.BILINEAR)))
    return np.stack(crops)


def ood_figures(run: Path, seed: int, work: Path) -> dict[str, Any]:
    """AUROC of the run's out-of-distribution score: test images against each shift."""
    from sklearn.metrics import roc_auc_score

    from medlens.inference.classify import predict_files

    table = pd.read_csv(run / "predictions.csv")
    inside = table.loc[table["split"] == "test", "ood_score"].to_numpy()
    with np.load(recipe_data("pneumonia")) as data:
        test_images = data["test_images"]
    shifts = {
        "site_b": np.stack([site_b(image) for image in test_images]),
        "fundus_28px": fundus_crops(seed),
    }
    out: dict[str, Any] = {"in_distribution_flagged": float((inside > _threshold(run)).mean())}
    for name, images in shifts.items():
        folder = _write_pngs(images, work / f"{name}-s{seed}")
        csv = work / f"{name}-s{seed}.csv"
        predict_files(run, [folder], csv, progress=False)
        outside = pd.read_csv(csv)["ood_score"].to_numpy()
        scores = np.r_[inside, outside]
        truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
        out[name] = {
            "n": len(outside),
            "auroc": float(roc_auc_score(truth, scores)),
            "flagged": float((outside > _threshold(run)).mean()),
        }
    return out


def _threshold(run: Path) -> float:
    with np.load(run / "ood.npz") as arrays:
        return float(arrays["threshold"])


def segmentation_figures(run: Path, work: Path) -> dict[str, Any]:
    """Spearman rho between each DRIVE test image's uncertainty and its Dice."""
    from scipy.stats import spearmanr

    from medlens.inference.segment import segment_files

    out = work / f"{run.name}-masks"
    images = sorted((DRIVE / "test" / "images").glob("*.tif"))
    segment_files(run, images, out, progress=False, uncertainty="tta")
    predicted = pd.read_csv(out / "segmentations.csv")
    predicted["number"] = predicted["case_id"].map(lambda p: Path(p).name.split("_")[0])
    scored = pd.read_csv(run / "segmentation_metrics.csv")
    scored = scored[scored["split"] == "test"].copy()
    scored["number"] = scored["case_id"].map(lambda c: Path(str(c)).name.split("_")[0])
    joined = predicted.merge(scored[["number", "dice"]], on="number")
    rho = spearmanr(joined["uncertainty"], joined["dice"]).statistic
    return {
        "n_images": len(joined),
        "spearman_uncertainty_dice": float(rho),
        "spearman_mean_entropy_dice": float(
            spearmanr(joined["mean_entropy"], joined["dice"]).statistic
        ),
        "test_dice_mean": float(joined["dice"].mean()),
        "temperature": json.loads((run / "calibration.json").read_text()).get("temperature"),
    }


def _stat(values: list[float]) -> dict[str, Any]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": round(statistics.mean(values), 5),
        "sd": round(sd, 5),
        "each": [round(v, 5) for v in values],
    }


def _stats(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: _stat([float(r[key]) for r in rows]) for key in keys}


def _calibrator_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per calibrator, mean and sd over seeds of each figure; and the figures of the one
    each seed's validation chose."""
    if not all("calibrators" in r for r in rows):
        return {}
    methods = rows[0]["calibrators"]["methods"]
    stats: dict[str, Any] = {
        m: _stats([r["calibrators"]["methods"][m] for r in rows], tuple(methods[m]))
        for m in methods
    }
    chosen = [r["calibrators"]["methods"][r["calibrators"]["chosen"]] for r in rows]
    stats["chosen_by_val_cv"] = {
        "each": [r["calibrators"]["chosen"] for r in rows],
        **_stats(
            chosen,
            (
                "test_ece",
                "ece_rel_drop",
                "auc_change",
                "test_ece_prior_adapted",
                "ece_rel_drop_prior_adapted",
            ),
        ),
    }
    return stats


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The issue's summary keys (each a mean over seeds; across datasets or shifts, the worse
    one), and the per-dataset statistics behind them."""
    per: dict[str, Any] = {}
    for dataset in ("pneumonia", "adrenal"):
        rows = runs[dataset]
        per[dataset] = _stats(
            rows,
            (
                "test_ece_before",
                "test_ece_after",
                "ece_rel_drop",
                "auc_change",
                "bal_acc_all",
                "bal_acc_at_80_cov",
                "bal_acc_gain_at_80_cov",
                "bal_acc_gain_at_80_cov_decision",
                "bal_acc_gain_at_80_cov_margin",
                "bal_acc_gain_at_80_cov_max_softmax",
                "aurc",
                "aurc_max_softmax",
                "aurc_gain_vs_maxsoftmax",
                "aurc_decision",
                "aurc_margin",
                "aurc_balanced",
                "aurc_balanced_max_softmax",
                "aurc_weighted",
                "aurc_weighted_max_softmax",
                "aurc_weighted_gain_vs_maxsoftmax",
                "band_test_coverage",
                "band_bal_acc_gain",
                "threshold_rule",
                "threshold_youden_raw",
                "threshold_youden_calibrated",
                "test_auc",
                "test_acc_at_val_threshold",
                "test_acc_at_0.5",
                "epochs",
                "train_minutes",
            ),
        )
        if all("ece_top_label_rel_drop" in r for r in rows):
            per[dataset]["top_label_ece"] = _stats(
                rows,
                (
                    "test_ece_top_label_before",
                    "test_ece_top_label_after",
                    "ece_top_label_rel_drop",
                ),
            )
        if all("ece_rel_drop_prior_adapted" in r for r in rows):
            per[dataset]["prior_adapted"] = _stats(
                rows,
                (
                    "test_ece_prior_adapted",
                    "ece_rel_drop_prior_adapted",
                    "prior_source",
                    "prior_estimated",
                    "prior_true",
                ),
            )
            per[dataset]["prior_adapted"]["prior_true_in_interval_runs"] = sum(
                r["prior_true_in_interval"] for r in rows
            )
        per[dataset]["calibrators"] = _calibrator_stats(rows)
        per[dataset]["sensitivity_rule"] = _stat([r["sens_spec_rule"][0] for r in rows])
        per[dataset]["specificity_rule"] = _stat([r["sens_spec_rule"][1] for r in rows])
        per[dataset]["sensitivity_youden_raw"] = _stat([r["sens_spec_youden_raw"][0] for r in rows])
        per[dataset]["specificity_youden_raw"] = _stat([r["sens_spec_youden_raw"][1] for r in rows])
    ood = {
        shift: {k: _stat([r[shift][k] for r in runs["ood"]]) for k in ("auroc", "flagged")}
        for shift in ("site_b", "fundus_28px")
    }
    drive = {
        k: _stat([r[k] for r in runs["drive"]])
        for k in ("spearman_uncertainty_dice", "spearman_mean_entropy_dice", "test_dice_mean")
    }
    summary = {
        "ece_rel_drop_pneumonia": per["pneumonia"]["ece_rel_drop"]["mean"],
        "ece_rel_drop_adrenal": per["adrenal"]["ece_rel_drop"]["mean"],
        "auc_change_max": max(
            max(r["auc_change"] for r in runs[d]) for d in ("pneumonia", "adrenal")
        ),
        "bal_acc_gain_at_80_cov": min(per[d]["bal_acc_gain_at_80_cov"]["mean"] for d in per),
        "aurc_gain_vs_maxsoftmax": min(per[d]["aurc_gain_vs_maxsoftmax"]["mean"] for d in per),
        "ood_auroc_min": min(ood[s]["auroc"]["mean"] for s in ood),
        "drive_unc_dice_spearman": drive["spearman_uncertainty_dice"]["mean"],
        "threshold_sd_pneumonia": per["pneumonia"]["threshold_rule"]["sd"],
    }
    # Not the keys: adapting to the test split's class mix reads the test images
    # (never their labels); the headline ECE keys stay calibration fitted on validation alone.
    prior_adapted = {
        f"ece_rel_drop_{d}_prior_adapted": per[d]["prior_adapted"]["ece_rel_drop_prior_adapted"][
            "mean"
        ]
        for d in per
        if "prior_adapted" in per[d]
    }
    # Not the keys either: the calibrator each seed's cross-fitted validation log loss
    # chose (the run itself used the default, temperature).
    chosen = {
        f"ece_rel_drop_{d}_val_chosen_calibrator{suffix}": per[d]["calibrators"][
            "chosen_by_val_cv"
        ][f"ece_rel_drop{suffix}"]["mean"]
        for d in per
        if per[d].get("calibrators")
        for suffix in ("", "_prior_adapted")
    }
    # Not the keys: the classification benchmark's figures of the same runs, named as
    # benchmarks/classification.py names them.
    classification = {
        f"{d}_{key}": per[d][column]["mean"]
        for d in per
        for key, column in (
            ("test_auc", "test_auc"),
            ("test_acc", "test_acc_at_val_threshold"),
            ("test_acc_at_0.5", "test_acc_at_0.5"),
            ("train_minutes", "train_minutes"),
        )
    }
    return {
        "summary": summary,
        "classification": classification,
        "prior_adapted": prior_adapted,
        "calibrator_chosen_on_validation": chosen,
        "datasets": per,
        "ood": ood,
        "drive": drive,
    }


KEPT_FILES = ("predictions.csv", "metrics.json")


def keep_run(run: Path, folder: Path) -> None:
    """Copy what ``classification_figures`` reads of a run to ``folder/<run name>``."""
    target = folder / run.name
    target.mkdir(parents=True, exist_ok=True)
    for name in KEPT_FILES:
        shutil.copy2(run / name, target / name)


def refigure(
    report_path: Path, runs_folder: Path, datasets: tuple[str, ...] = ("pneumonia", "adrenal")
) -> dict[str, Any]:
    """The report at ``report_path`` with the classification figures of ``datasets``
    computed again from the kept runs ``runs_folder/<dataset>-s<seed>`` (``--keep-runs``);
    the other dataset's, the out-of-distribution and the DRIVE figures are kept as they
    were."""
    report = json.loads(report_path.read_text())
    runs = report["runs"]
    for dataset in datasets:
        runs[dataset] = [
            classification_figures(runs_folder / f"{dataset}-s{seed}")
            for seed in range(len(runs[dataset]))
        ]
    report.update(summarize(runs))
    report["runs"] = runs
    report["refigured"] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "datasets": list(datasets),
        "from": "the predictions.csv and metrics.json of each classification run; the refer "
        "band chosen again on each run's validation split by the code of this commit",
    }
    return report


def seed_line(seed: int, dataset: str, figures: dict[str, Any]) -> str:
    """One classification run's figures, as the progress log shows them."""
    return (
        f"seed {seed} {dataset}: ECE {figures['test_ece_before']:.3f} -> "
        f"{figures['test_ece_after']:.3f}, dAUC {figures['auc_change']:.1e}, "
        f"bal. acc. {figures['bal_acc_all']:.3f} -> {figures['bal_acc_at_80_cov']:.3f}"
        f" at 80%, AURC {figures['aurc']:.4f} vs {figures['aurc_max_softmax']:.4f}, "
        f"threshold {figures['threshold_rule']:.3f}, adapted to the estimated "
        f"test mix ECE {figures.get('test_ece_prior_adapted', float('nan')):.3f}, "
        f"test AUC {figures['test_auc']:.4f}"
    )


def retrain(
    report_path: Path, dataset: str, minutes: float, keep_runs: Path | None = None
) -> dict[str, Any]:
    """The report at ``report_path`` with ``dataset``'s classification runs trained again, one
    per seed it had, under ``minutes`` each (its recipe in configs/ changed). The other
    dataset's runs and the DRIVE figures are kept; so are the out-of-distribution figures,
    which come from the PneumoniaMNIST runs (retraining those retrains them too)."""
    report = json.loads(report_path.read_text())
    runs = report["runs"]
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="medlens-uncertainty-"))
    try:
        for seed in range(len(runs[dataset])):
            run = train(dataset, seed, minutes, work / "runs")
            if keep_runs:
                keep_run(run, keep_runs)
            runs[dataset][seed] = classification_figures(run)
            if dataset == "pneumonia":
                runs["ood"][seed] = ood_figures(run, seed, work)
            print(seed_line(seed, dataset, runs[dataset][seed]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.update(summarize(runs))
    report["runs"] = runs
    if "refigured" in report:  # its note no longer describes this dataset's runs
        report["refigured"].setdefault("retrained_since", []).append(dataset)
    report.setdefault("retrained", []).append(
        {
            "dataset": dataset,
            "recipe": str(RECIPES[dataset].relative_to(REPO)),
            "threshold": recipe_threshold(dataset),
            "minutes": minutes,
            "machine": machine_info(),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--minutes",
        type=float,
        help="per classification run (default 10; --retrain: the report's own budget)",
    )
    parser.add_argument("--seg-minutes", type=float, default=15.0, help="per DRIVE run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--keep-runs", type=Path, help="copy each classification run's predictions here"
    )
    parser.add_argument(
        "--refigure",
        type=Path,
        metavar="RUNS",
        help="no training: recompute the classification figures of --out from kept runs",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=("pneumonia", "adrenal"),
        default=["pneumonia", "adrenal"],
        help="with --refigure: the datasets whose kept runs are read (the others' figures "
        "stay as they were)",
    )
    parser.add_argument(
        "--retrain",
        choices=("pneumonia", "adrenal"),
        help="train this dataset's seeds again into --out, keeping its other figures "
        "(--minutes: the budget of the report's setup unless given)",
    )
    args = parser.parse_args()
    if args.retrain:
        out = args.out or HERE / "results" / "uncertainty.json"
        import torch

        torch.set_num_threads(args.threads)
        minutes = args.minutes or json.loads(out.read_text())["setup"]["classification_minutes"]
        report = retrain(out, args.retrain, minutes, args.keep_runs)
        write_atomic(out, json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["summary"], indent=2))
        return
    if args.refigure:
        out = args.out or HERE / "results" / "uncertainty.json"
        report = refigure(out, args.refigure, tuple(args.datasets))
        write_atomic(out, json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["summary"], indent=2))
        return
    if args.quick:
        args.seeds, args.minutes, args.seg_minutes = 2, 1.0, 2.0
    args.minutes = args.minutes or 10.0
    import torch

    torch.set_num_threads(args.threads)
    missing = [str(p) for p in map(recipe_data, RECIPES) if not p.exists()]
    if missing:
        raise SystemExit(f"data not found: {', '.join(missing)} (set MEDLENS_SHARED_DATA)")
    out = args.out or HERE / "results" / (
        "uncertainty_quick.json" if args.quick else "uncertainty.json"
    )
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="medlens-uncertainty-"))
    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("pneumonia", "adrenal", "ood", "drive")
    }
    try:
        for seed in range(args.seeds):
            for dataset in ("pneumonia", "adrenal"):
                t0 = time.perf_counter()
                run = train(dataset, seed, args.minutes, work / "runs")
                if args.keep_runs:
                    keep_run(run, args.keep_runs)
                figures = classification_figures(run)
                runs[dataset].append(figures)
                if dataset == "pneumonia":
                    runs["ood"].append(ood_figures(run, seed, work))
                print(
                    f"{seed_line(seed, dataset, figures)} ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
            print(f"seed {seed} ood: {json.dumps(runs['ood'][-1])}", flush=True)
            drive = train("drive", seed, args.seg_minutes, work / "runs")
            runs["drive"].append(segmentation_figures(drive, work))
            print(f"seed {seed} drive: {json.dumps(runs['drive'][-1])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "machine": machine_info(),
        "setup": {
            "seeds": args.seeds,
            "classification_minutes": args.minutes,
            "segmentation_minutes": args.seg_minutes,
            "recipes": {k: str(v.relative_to(REPO)) for k, v in RECIPES.items()},
            "trust_settings": "defaults: calibration temperature, refer coverage 0.9, "
            "selective order class-stratified, ood mahalanobis at 5% validation false alarms",
            "thresholds": {k: recipe_threshold(k) for k in ("pneumonia", "adrenal")},
            "ood_shifts": "site B (255 - x, blur sigma 0.7 px) of the 624 test images; "
            f"{CROPS_PER_IMAGE} seeded grey crops of each of the 40 DRIVE photographs at 28 px",
            "summary_rule": "each key is a mean over seeds; across datasets or shifts the worse "
            "one (auc_change_max: the largest over every run)",
        },
        **summarize(runs),
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    print(json.dumps(report["prior_adapted"], indent=2))
    print(f"wrote {out} in {report['wall_seconds']} s")


if __name__ == "__main__":
    main()
