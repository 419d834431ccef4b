"""Detection benchmark: BCCD blood cells (Faster R-CNN) and white-cell instance segmentation
(Mask R-CNN), on the CPU, without downloaded weights.

BCCD (../shared/data/bccd_blood_cells, official split 205 / 87 / 72): the recipe of
configs/bccd_faster_rcnn.yaml, whose ResNet-18 backbone is first pre-trained on crops of the
training split's boxes (64 x 64 windows at the detector's working scale, plus background
windows: a medlens classification run) and handed over as ``model.init``. Pre-training and
detector training share the budget (``--minutes``, 30 by default); the test split is scored
once. Beside it, in its own process and for the same wall time, the plain torchvision script a
new user would write (benchmarks/detection_baseline.py); its test detections are scored by the
same metrics. ``max_abs_diff_vs_pycocotools`` compares medlens' COCO AP/AR on the run's
frozen test detections with pycocotools'.

WBC (../shared/data/wbc_cells, 300 single-cell images with nucleus/cytoplasm masks and cell
types): converted to COCO JSON (per image the whole cell, classed by its type, and the
nucleus, each an RLE mask); Mask R-CNN, 5-fold stratified cross-validation. Per test image:
Dice of the top-scoring cell's mask with the whole cell and of the top nucleus with the
nucleus; the cell type is the class of the top-scoring cell detection (balanced accuracy over
the pooled folds).

    python benchmarks/detection.py            # full protocol -> results/detection.json
    python benchmarks/detection.py --quick    # a few minutes -> results/detection_quick.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info, peak_rss_mb  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

REPO = HERE.parent
BCCD = SHARED_DATA / "bccd_blood_cells" / "BCCD"
WBC = SHARED_DATA / "wbc_cells"
RECIPE = REPO / "configs" / "bccd_faster_rcnn.yaml"
PUBLISHED = {  # COCO pre-training on GPUs; mAP@0.5 on BCCD (Chen et al., IET CV 2025)
    "YOLO-Dense": 0.86,
    "YOLOv8n": 0.924,
    "NBCDC-YOLOv8": 0.947,
}
WBC_TYPES = ["neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil"]
CROP = 64  # pixels of a pre-training window, at the detector's working scale
BACKGROUND_PER_IMAGE = 3


# -- BCCD data ---------------------------------------------------------------------------------
def _split_ids(root: Path) -> dict[str, list[str]]:
    return {
        s: (root / "ImageSets" / "Main" / f"{s}.txt").read_text().split()
        for s in ("train", "val", "test")
    }


def _subset_voc(root: Path, out: Path, per_split: dict[str, int]) -> Path:
    """A VOC folder with the first images of each official split (the quick mode's data)."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for split, ids in _split_ids(root).items():
        chosen = ids[: per_split[split]]
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(chosen) + "\n")
        for image_id in chosen:
            shutil.copy(root / "Annotations" / f"{image_id}.xml", out / "Annotations")
            shutil.copy(root / "JPEGImages" / f"{image_id}.jpg", out / "JPEGImages")
    return out


def write_crops(
    voc: Path, out: Path, preprocess: list[dict[str, Any]], seed: int
) -> dict[str, int]:
    """Crops of the training split at the detector's working scale: a ``CROP``-pixel window
    centred on each object (folder per class) and ``BACKGROUND_PER_IMAGE`` windows whose
    centre lies in no box (``background``). Validation and test images are not touched."""
    from medlens.data.boxes import open_detection_source
    from medlens.data.boxes.overlay import write_png
    from medlens.preprocess import build_pipeline
    from medlens.preprocess.boxes import apply_with_boxes
    from medlens.preprocess.spatial import Crop

    source = open_detection_source(voc, skip_bad=True)
    pipeline = build_pipeline(preprocess)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}

    def save(image: Any, cy: float, cx: float, name: str, stem: str) -> None:
        start = [int(round(cy - CROP / 2)), int(round(cx - CROP / 2))]
        window = Crop(start=start, size=[CROP, CROP])(image).array
        rgb = (np.clip(np.moveaxis(window, 0, -1), 0, 1) * 255).round().astype(np.uint8)
        counts[name] = counts.get(name, 0) + 1
        write_png(out / name / f"{stem}_{counts[name]}.png", rgb)

    for case in (c for c in source.cases if c.split == "train"):
        raw = source.load(case)
        targets = source.targets(case, raw.spatial_shape)
        image, boxes, keep, _ = apply_with_boxes(pipeline, raw, targets.boxes)
        for box, label in zip(boxes, targets.labels[keep], strict=True):
            save(
                image,
                (box[1] + box[3]) / 2,
                (box[0] + box[2]) / 2,
                source.class_names[label],
                case.case_id,
            )
        height, width = image.spatial_shape
        placed = 0
        for _ in range(50):
            cy, cx = (
                rng.uniform(CROP / 2, height - CROP / 2),
                rng.uniform(CROP / 2, width - CROP / 2),
            )
            inside = (
                (boxes[:, 0] <= cx)
                & (cx <= boxes[:, 2])
                & (boxes[:, 1] <= cy)
                & (cy <= boxes[:, 3])
            )
            if not inside.any():
                save(image, cy, cx, "background", case.case_id)
                placed += 1
                if placed == BACKGROUND_PER_IMAGE:
                    break
    return counts


def pretrain_backbone(crops: Path, runs: Path, minutes: float, seed: int) -> Path:
    """A medlens classification run of the crops (ResNet-18, no weights); its model.pt."""
    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    config = parse_config(
        {
            "name": "bccd-crops",
            "seed": seed,
            "output_dir": str(runs),
            "data": {
                "format": "folder",
                "path": str(crops),
                "split": "random",
                "val_fraction": 0.1,
                "test_fraction": 0.1,
            },
            "preprocess": [{"name": "fixed_scale", "divisor": 255}],
            "augment": [
                {"name": "random_flip", "axes": [0, 1], "p": 0.5},
                {"name": "random_rotate90", "p": 0.5},
                {
                    "name": "random_brightness_contrast",
                    "brightness": 0.1,
                    "contrast": 0.15,
                    "p": 0.5,
                },
            ],
            "model": {"name": "resnet18", "cifar_stem": False},
            "train": {
                "epochs": 100,
                "batch_size": 64,
                "lr": 0.002,
                "warmup_epochs": 0.5,
                "early_stopping_patience": None,
                "max_minutes": minutes,
                "amp": False,
            },
            "evaluate": {"n_bootstrap": 0},
        }
    )
    run = train_and_report(config, overwrite=True, progress=False)
    return run / "model.pt"


def train_bccd(voc: Path, runs: Path, minutes: float, init: Path | None, seed: int) -> Path:
    """configs/bccd_faster_rcnn.yaml on ``voc`` for ``minutes``, from ``init``."""
    import yaml

    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    raw = yaml.safe_load(RECIPE.read_text())
    raw.update(seed=seed, output_dir=str(runs))
    raw["data"]["path"] = str(voc)
    raw["train"]["max_minutes"] = minutes
    if init is not None:
        raw["model"]["init"] = str(init)
    return train_and_report(parse_config(raw), overwrite=True, progress=False)


def _training_minutes(run: Path) -> float:
    """The run's training time: the sum of its epochs (training and validation), minutes."""
    import pandas as pd

    return float(pd.read_csv(run / "history.csv")["seconds"].sum()) / 60


# -- scoring -----------------------------------------------------------------------------------
def _references(voc: Path, split: str) -> tuple[list[Any], list[str], list[str]]:
    from medlens.data.boxes import open_detection_source
    from medlens.data.boxes.source import image_size
    from medlens.metrics.detection import ReferenceObjects

    source = open_detection_source(voc, skip_bad=True)
    cases = [c for c in source.cases if c.split == split]
    refs = []
    for case in cases:
        t = source.targets(case, image_size(source.record(case)))
        refs.append(ReferenceObjects.of(t.boxes, t.labels, t.crowd, image_id=case.case_id))
    return refs, [c.case_id for c in cases], list(source.class_names)


def _run_test_detections(run: Path, class_names: list[str], ids: list[str]) -> list[Any]:
    from medlens.metrics.detection import DetectedObjects

    document = json.loads((run / "detections.json").read_text())
    by_id = {i["image_id"]: i for i in document["images"] if i["split"] == "test"}
    out = []
    for image_id in ids:
        found = by_id[image_id]["detections"]
        out.append(
            DetectedObjects.of(
                [d["box"] for d in found],
                [d["score"] for d in found],
                [class_names.index(d["class"]) for d in found],
                image_id=image_id,
            )
        )
    return out


def pycocotools_difference(
    detections: list[Any], references: list[Any], class_names: list[str]
) -> float | None:
    """The largest |medlens - pycocotools| over AP, AP50, AP75, AR100 and each class's AP,
    AP50 and AP75, on the same frozen detections; None without pycocotools."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    from medlens.metrics.detection import ap_metrics, match_images

    gt: dict[str, Any] = {
        "images": [],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)],
        "annotations": [],
    }
    results = []
    for i, (r, d) in enumerate(zip(references, detections, strict=True)):
        gt["images"].append({"id": i + 1})
        for b, lab, crowd in zip(r.boxes, r.labels, r.crowd, strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(lab) + 1,
                    "bbox": [float(b[0]), float(b[1]), w, h],
                    "area": w * h,
                    "iscrowd": int(crowd),
                }
            )
        for b, s, lab in zip(d.boxes, d.scores, d.labels, strict=True):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(lab) + 1,
                    "score": float(s),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ours = ap_metrics(match_images(detections, references, len(class_names)), len(class_names))
    pairs = [
        (ours["overall"][k], evaluation.stats[i])
        for k, i in (("map", 0), ("map50", 1), ("map75", 2), ("ar100", 8))
    ]
    precision = evaluation.eval["precision"][:, :, :, 0, 2]
    for k in range(len(class_names)):
        for t, key in ((None, "ap"), (0, "ap50"), (5, "ap75")):
            p = precision[:, :, k] if t is None else precision[t, :, k]
            p = p[p > -1]
            if p.size:
                pairs.append((ours["per_class"][k][key], float(p.mean())))
    return float(max(abs(a - b) for a, b in pairs))


def run_baseline(voc: Path, minutes: float, work: Path, seed: int) -> dict[str, Any]:
    """benchmarks/detection_baseline.py in its own process (its own peak memory), scored."""
    from medlens.metrics.detection import DetectedObjects, evaluate_detections

    ids = _split_ids(voc)
    (work / "train_ids.txt").write_text("\n".join(ids["train"] + ids["val"]))
    (work / "test_ids.txt").write_text("\n".join(ids["test"]))
    out = work / "baseline.json"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "detection_baseline.py"),
            "--root",
            str(voc),
            "--minutes",
            str(minutes),
            "--train-ids",
            str(work / "train_ids.txt"),
            "--test-ids",
            str(work / "test_ids.txt"),
            "--out",
            str(out),
        ],
        check=True,
    )
    result = json.loads(out.read_text())
    refs, test_ids, names = _references(voc, "test")
    found = [
        DetectedObjects.of(
            result["detections"][i]["boxes"],
            result["detections"][i]["scores"],
            result["detections"][i]["labels"],
            image_id=i,
        )
        for i in test_ids
    ]
    scores = evaluate_detections(found, refs, names, n_bootstrap=0, seed=seed)
    return {
        "train_minutes": result["train_seconds"] / 60,
        "epochs": result["epochs"],
        "peak_rss_mb": result["peak_rss_mb"],
        "map50": scores["metrics"]["map50"]["value"],
        "map50_95": scores["metrics"]["map"]["value"],
        "ap50": {n: scores["per_class"][n]["ap50"]["value"] for n in names},
    }


# -- WBC ---------------------------------------------------------------------------------------
def wbc_coco(out: Path, limit: int | None = None) -> tuple[Path, dict[str, int]]:
    """``annotations.json`` of the WBC images: the whole cell (class: its type) and the
    nucleus of each image, as RLE masks; image paths absolute."""
    import csv

    from PIL import Image as PILImage

    from medlens.data.boxes.rle import encode_mask, mask_box

    with open(WBC / "Class Labels of Dataset 1.csv", newline="", encoding="utf-8-sig") as handle:
        types = {int(r["image ID"]): int(r["class label"]) for r in csv.DictReader(handle)}
    categories = [*WBC_TYPES, "nucleus"]
    document: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(categories)],
    }
    folder = WBC / "Dataset 1"
    ids = sorted(types)[:limit] if limit else sorted(types)
    for image_id in ids:
        mask = np.asarray(PILImage.open(folder / f"{image_id:03d}.png"))
        height, width = mask.shape
        document["images"].append(
            {
                "id": image_id,
                "file_name": str(folder / f"{image_id:03d}.bmp"),
                "height": height,
                "width": width,
            }
        )
        for category, region in ((types[image_id], mask >= 128), (len(categories), mask == 255)):
            box = mask_box(region)
            if box is None:
                continue
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "area": int(region.sum()),
                    "iscrowd": 0,
                    "segmentation": encode_mask(region),
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "annotations.json"
    path.write_text(json.dumps(document))
    counts = {
        n: sum(1 for t in (types[i] for i in ids) if t == k + 1) for k, n in enumerate(WBC_TYPES)
    }
    return path, counts


def _dice(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None:
        return 0.0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def train_wbc_fold(
    annotations: Path, runs: Path, fold: int, folds: int, minutes: float, seed: int
) -> Path:
    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    config = parse_config(
        {
            "name": f"wbc-mask-rcnn-fold{fold}",
            "task": "detection",
            "seed": seed,
            "output_dir": str(runs),
            "data": {
                "format": "boxes",
                "layout": "coco",
                "path": str(annotations),
                "folds": folds,
                "fold": fold,
            },
            "preprocess": [
                {"name": "fixed_scale", "divisor": 255},
                {"name": "fit_size", "min_size": 128, "max_size": 128},
            ],
            "augment": [
                {"name": "random_flip", "axes": [0, 1], "p": 0.5},
                {"name": "random_rotate90", "p": 0.5},
                {
                    "name": "random_brightness_contrast",
                    "brightness": 0.1,
                    "contrast": 0.15,
                    "p": 0.5,
                },
            ],
            "model": {"name": "mask_rcnn", "backbone": "resnet18"},
            "detection": {
                "anchor_sizes": [16, 32, 64, 128, 256],
                "fpn_channels": 128,
                "box_head_size": 512,
                "proposals_train": 300,
                "proposals_test": 100,
                "roi_batch_size": 128,
                "max_detections": 20,
            },
            "train": {
                "epochs": 100,
                "batch_size": 4,
                "optimizer": "sgd",
                "lr": 0.01,
                "warmup_epochs": 1,
                "early_stopping_patience": None,
                "max_minutes": minutes,
            },
            "evaluate": {"n_bootstrap": 0},
        }
    )
    return train_and_report(config, overwrite=True, progress=False)


def score_wbc_fold(run: Path, annotations: Path) -> list[dict[str, Any]]:
    """Per test image: the true and predicted type, the cell and nucleus Dice."""
    from medlens.data.boxes.rle import decode_rle

    reference = json.loads(annotations.read_text())
    by_image: dict[int, dict[str, Any]] = {}
    for image in reference["images"]:
        by_image[image["id"]] = {"path": image["file_name"]}
    names = {c["id"]: c["name"] for c in reference["categories"]}
    for a in reference["annotations"]:
        kind = "nucleus" if names[a["category_id"]] == "nucleus" else "cell"
        by_image[a["image_id"]][kind] = decode_rle(a["segmentation"], "reference")
        if kind == "cell":
            by_image[a["image_id"]]["type"] = names[a["category_id"]]
    case_of = {str(Path(v["path"]).with_suffix("")): v for v in by_image.values()}
    rows = []
    for image in json.loads((run / "detections.json").read_text())["images"]:
        if image["split"] != "test":
            continue
        truth = case_of[image["image_id"]]
        found = sorted(image["detections"], key=lambda d: -d["score"])
        cell = next((d for d in found if d["class"] in WBC_TYPES), None)
        nucleus = next((d for d in found if d["class"] == "nucleus"), None)
        rows.append(
            {
                "type": truth["type"],
                "predicted": cell["class"] if cell else "none",
                "cell_dice": _dice(
                    decode_rle(cell["mask"], "run") if cell else None, truth["cell"]
                ),
                "nucleus_dice": _dice(
                    decode_rle(nucleus["mask"], "run") if nucleus else None, truth["nucleus"]
                ),
            }
        )
    return rows


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few minutes: subsets, short budgets"
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="BCCD budget (pre-training + detector)"
    )
    parser.add_argument(
        "--pretrain-share", type=float, default=0.15, help="share of the budget for pre-training"
    )
    parser.add_argument(
        "--wbc-minutes", type=float, default=None, help="Mask R-CNN budget per fold"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    quick = args.quick
    minutes = args.minutes or (2.5 if quick else 30.0)
    wbc_minutes = args.wbc_minutes or (1.0 if quick else 4.0)
    wbc_folds_run = 1 if quick else args.folds
    out = args.out or HERE / "results" / ("detection_quick.json" if quick else "detection.json")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": machine_info(),
        "quick": quick,
        "seed": args.seed,
        "published_map50": PUBLISHED,
    }

    def save() -> None:  # after every phase, so a failure keeps what was measured
        write_atomic(out, json.dumps(result, indent=2, default=float) + "\n")

    with tempfile.TemporaryDirectory(prefix="medlens-detection-") as tmp:
        work = Path(tmp)
        voc = (
            _subset_voc(BCCD, work / "bccd", {"train": 40, "val": 16, "test": 16})
            if quick
            else BCCD
        )
        import yaml

        recipe = yaml.safe_load(RECIPE.read_text())
        t0 = time.perf_counter()
        crops = write_crops(voc, work / "crops", recipe["preprocess"], args.seed)
        init = pretrain_backbone(
            work / "crops", work / "runs", minutes * args.pretrain_share, args.seed
        )
        pretrain_minutes = _training_minutes(init.parent)
        # the detector gets what pre-training left of the budget (at least a tenth of it)
        detector_budget = max(minutes - pretrain_minutes, 0.1 * minutes)
        run = train_bccd(voc, work / "runs", detector_budget, init, args.seed)
        metrics = json.loads((run / "metrics.json").read_text())
        detector_minutes = _training_minutes(run)
        bccd_minutes = pretrain_minutes + detector_minutes
        bccd_wall_minutes = (time.perf_counter() - t0) / 60
        test = metrics["splits"]["test"]
        ap50 = {n: test["per_class"][n]["ap50"]["value"] for n in metrics["class_names"]}
        refs, ids, names = _references(voc, "test")
        diff = pycocotools_difference(_run_test_detections(run, names, ids), refs, names)
        result["bccd"] = {
            "crops": crops,
            "pretrain_minutes": pretrain_minutes,
            "detector_minutes": detector_minutes,
            "wall_minutes": bccd_wall_minutes,
            "epochs_run": metrics["epochs_run"],
            "best_epoch": metrics["best_epoch"],
            "detector_train_seconds": metrics["train_seconds"],
            "test": {
                **{k: v for k, v in test.items() if k not in ("curves", "froc")},
                "froc": {k: v for k, v in test["froc"].items() if k != "curve"},
            },
            "thresholds": metrics["thresholds"],
            "peak_rss_mb": peak_rss_mb(),
            "report": "report.html written (run folder deleted with the temporary folder)",
        }
        save()
        baseline = run_baseline(voc, bccd_minutes, work, args.seed)
        result["baseline"] = baseline
        save()
        annotations, type_counts = wbc_coco(work / "wbc", 60 if quick else None)
        wbc_rows: list[dict[str, Any]] = []
        fold_runs = []
        t_wbc = time.perf_counter()
        for fold in range(wbc_folds_run):
            fold_run = train_wbc_fold(
                annotations, work / "runs", fold, args.folds, wbc_minutes, args.seed
            )
            wbc_rows += score_wbc_fold(fold_run, annotations)
            fm = json.loads((fold_run / "metrics.json").read_text())["splits"]["test"]["metrics"]
            fold_runs.append(
                {
                    "fold": fold,
                    "mask_map50": fm.get("mask_map50", {}).get("value"),
                    "map50": fm["map50"]["value"],
                }
            )
        from sklearn.metrics import balanced_accuracy_score

        truth = [r["type"] for r in wbc_rows]
        result["wbc"] = {
            "images": sum(type_counts.values()),
            "type_counts": type_counts,
            "folds_run": wbc_folds_run,
            "folds": args.folds,
            "minutes_per_fold": wbc_minutes,
            "train_minutes": (time.perf_counter() - t_wbc) / 60,
            "cell_dice": float(np.mean([r["cell_dice"] for r in wbc_rows])),
            "nucleus_dice": float(np.mean([r["nucleus_dice"] for r in wbc_rows])),
            "type_accuracy": float(np.mean([r["type"] == r["predicted"] for r in wbc_rows])),
            "type_balanced_accuracy": float(
                balanced_accuracy_score(truth, [r["predicted"] for r in wbc_rows])
            ),
            "per_fold": fold_runs,
            "peak_rss_mb": peak_rss_mb(),
        }
    result["summary"] = {
        "bccd_map50": test["metrics"]["map50"]["value"],
        "bccd_map50_95": test["metrics"]["map"]["value"],
        "bccd_wbc_ap50": ap50.get("WBC"),
        "bccd_platelets_ap50": ap50.get("Platelets"),
        "bccd_rbc_ap50": ap50.get("RBC"),
        "bccd_train_minutes": bccd_minutes,
        "baseline_bccd_map50": baseline["map50"],
        "baseline_bccd_ap50": baseline["ap50"],
        "baseline_bccd_train_minutes": baseline["train_minutes"],
        "max_abs_diff_vs_pycocotools": diff,
        "wbc_maskrcnn_cell_dice": result["wbc"]["cell_dice"],
        "wbc_maskrcnn_nucleus_dice": result["wbc"]["nucleus_dice"],
        "wbc_maskrcnn_type_bal_acc": result["wbc"]["type_balanced_accuracy"],
        "peak_rss_mb": peak_rss_mb(),
        "wall_minutes": (time.perf_counter() - started) / 60,
    }
    save()
    print(json.dumps(result["summary"], indent=2, default=float))


if __name__ == "__main__":
    main()
