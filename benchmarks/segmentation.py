"""Segmentation benchmark: medlens vs a hand-written MONAI baseline on DRIVE, and a 3D U-Net
on the MNI152 template's grey/white matter.

DRIVE (../shared/data/drive_retina_vessels, official 20 train / 20 test): the recipe a user
gets from configs/drive_unet.yaml, and the baseline of benchmarks/drive_baseline.py, each
trained for the same wall-time budget in its own process (so its peak memory is its own);
Dice and pixel AUC inside the FOV masks of the 20 test images.

MNI152 (nilearn's 2 mm T1 template and its grey/white-matter probability maps, label = the
tissue whose probability exceeds 0.5): a 3D U-Net trained on the left hemisphere (cut into
4 slabs: 3 train, 1 validation) and tested on the right hemisphere; Dice per tissue.

    python benchmarks/segmentation.py                    # full protocol
    python benchmarks/segmentation.py --minutes 1 --mni-minutes 1 --out /tmp/seg.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info, peak_rss_mb  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

REPO = HERE.parent
DRIVE = SHARED_DATA / "drive_retina_vessels"
RECIPE = REPO / "configs" / "drive_unet.yaml"
PUBLISHED = {  # ../shared/BENCHMARKS.md: DRIVE test, F1 (= Dice) / AUC
    "U-Net (Alom et al. 2018)": (0.8142, 0.9755),
    "R2U-Net (Alom et al. 2018)": (0.8171, 0.9784),
    "three-path U-Net (2023)": (0.8291, None),
}


def _drive_config(minutes: float, out: Path, seed: int) -> dict:
    import yaml

    cfg = yaml.safe_load(RECIPE.read_text())
    cfg.update(name=f"drive-s{seed}", seed=seed, output_dir=str(out))
    cfg["data"]["path"] = str(DRIVE)
    cfg["train"]["max_minutes"] = minutes
    return cfg


def _mni_dataset(root: Path) -> Path:
    """An nnU-Net/Decathlon folder: imagesTr = 4 left-hemisphere slabs, imagesTs = the right
    hemisphere, labels 0 background / 1 grey matter / 2 white matter."""
    import nibabel as nib
    import numpy as np
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=2)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=2).dataobj)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=2).dataobj)
    image = np.asarray(t1.dataobj, dtype=np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[gm > 0.5] = 1
    labels[wm > 0.5] = 2
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir(parents=True)
    mid = image.shape[0] // 2
    # RAS affine with +2 mm on the first axis: index 0 is x = -98 mm, the left side.
    left, right = slice(0, mid), slice(mid, image.shape[0])
    bounds = np.linspace(0, image.shape[1], 5).astype(int)
    for k in range(4):
        ys = slice(bounds[k], bounds[k + 1])
        affine = t1.affine.copy()
        affine[:3, 3] += affine[:3, 1] * bounds[k]
        nib.save(
            nib.Nifti1Image(image[left, ys], affine), root / "imagesTr" / f"left_{k}_0000.nii.gz"
        )
        nib.save(nib.Nifti1Image(labels[left, ys], affine), root / "labelsTr" / f"left_{k}.nii.gz")
    affine = t1.affine.copy()
    affine[:3, 3] += affine[:3, 0] * mid
    nib.save(nib.Nifti1Image(image[right], affine), root / "imagesTs" / "right_0000.nii.gz")
    nib.save(nib.Nifti1Image(labels[right], affine), root / "labelsTs" / "right.nii.gz")
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "MNI152 tissue",
                "channel_names": {"0": "T1"},
                "labels": {"background": 0, "grey_matter": 1, "white_matter": 2},
                "file_ending": ".nii.gz",
            }
        )
    )
    return root


def _mni_config(data: Path, minutes: float, out: Path, seed: int) -> dict:
    return {
        "name": f"mni-s{seed}",
        "task": "segmentation",
        "seed": seed,
        "output_dir": str(out),
        "data": {
            "format": "segmentation",
            "layout": "msd",
            "path": str(data),
            "val_fraction": 0.25,
        },
        "preprocess": [{"name": "z_score", "nonzero": True}],
        "augment": [
            {"name": "random_flip", "axes": [0, 1, 2], "p": 0.5},
            {"name": "random_brightness_contrast", "p": 0.3},
        ],
        "model": {"name": "unet"},
        "segmentation": {
            "patch_size": [32, 32, 32],
            "patches_per_image": 32,
            "overlap": 0.5,
            "tta_flip": False,
            "save_masks": "nifti",
            "surface_tolerance_mm": 2.0,
        },
        "train": {
            "epochs": 500,
            "batch_size": 4,
            "lr": 0.002,
            "warmup_epochs": 1,
            "early_stopping_patience": None,
            "max_minutes": minutes,
        },
        "evaluate": {"n_bootstrap": 0},
    }


def _class_metrics(run_dir: Path, split: str = "test") -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    out = {}
    for cls, values in metrics["splits"][split].items():
        out[cls] = {
            name: values[name]["mean"]
            for name in ("dice", "pixel_auc", "hausdorff_distance_95", "normalized_surface_dice")
            if name in values
        }
    out["_train_minutes"] = metrics["train_seconds"] / 60
    out["_epochs_run"] = metrics["epochs_run"]
    out["_best_epoch"] = metrics["best_epoch"]
    return out


def child(args: argparse.Namespace) -> None:
    """One part in this process; prints its result as the last line of JSON."""
    import torch

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    if args.part == "baseline":
        from drive_baseline import run_drive_baseline

        result: dict[str, Any] = run_drive_baseline(DRIVE, args.minutes, seed=args.seed)
    else:
        from medlens.commands.train import train_and_report
        from medlens.config import parse_config

        with tempfile.TemporaryDirectory(prefix="medlens-seg-bench-") as tmp:
            out = Path(args.keep) if args.keep else Path(tmp)
            if args.part == "drive":
                cfg = _drive_config(args.minutes, out, args.seed)
            else:
                data = _mni_dataset(Path(tmp) / "mni")
                cfg = _mni_config(data, args.minutes, out, args.seed)
            run_dir = train_and_report(parse_config(cfg), overwrite=True, progress=False)
            result = _class_metrics(run_dir)
    result.update(wall_minutes=(time.perf_counter() - t0) / 60, peak_rss_mb=peak_rss_mb())
    print(json.dumps(result))


def _spawn(part: str, minutes: float, seed: int, keep: str | None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        part,
        "--minutes",
        str(minutes),
        "--seed",
        str(seed),
    ]
    if keep:
        cmd += ["--keep", keep]
    print(f"[{time.strftime('%H:%M:%S')}] {part} seed {seed}, {minutes} min ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{part} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"    -> {json.dumps(result)[:600]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=25.0, help="DRIVE training budget, each")
    parser.add_argument("--mni-minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="drive,baseline,mni")
    parser.add_argument("--keep", default=None, help="keep run folders under this folder")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "segmentation.json")
    parser.add_argument("--child", choices=("drive", "baseline", "mni"), help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.part = args.child
        child(args)
        return
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "protocol": __doc__.strip().splitlines()[0],
    }
    parts = args.parts.split(",")
    results: dict[str, Any] = {}
    for part in parts:
        minutes = args.mni_minutes if part == "mni" else args.minutes
        results[part] = _spawn(part, minutes, args.seed, args.keep)
        report["results"] = results
        write_atomic(args.out.with_suffix(".partial.json"), json.dumps(report, indent=2) + "\n")
    report["published"] = {k: {"dice": d, "auc": a} for k, (d, a) in PUBLISHED.items()}
    report["wall_minutes"] = (time.perf_counter() - t0) / 60
    report["peak_rss_mb_children"] = peak_rss_mb(children=True)
    report["summary"] = _summary(results)
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(json.dumps(report["summary"], indent=2))


def _summary(results: dict) -> dict:
    summary: dict[str, Any] = {}
    if "drive" in results:
        vessel = results["drive"]["vessel"]
        summary.update(
            drive_test_dice=vessel["dice"],
            drive_test_auc=vessel.get("pixel_auc"),
            drive_train_minutes=results["drive"]["_train_minutes"],
        )
    if "baseline" in results:
        summary.update(
            baseline_drive_test_dice=results["baseline"]["test_dice"],
            baseline_drive_test_auc=results["baseline"]["test_auc"],
            baseline_drive_train_minutes=results["baseline"]["train_minutes"],
        )
    if "mni" in results:
        summary.update(
            mni_gm_dice=results["mni"]["grey_matter"]["dice"],
            mni_wm_dice=results["mni"]["white_matter"]["dice"],
            mni_train_minutes=results["mni"]["_train_minutes"],
        )
    return summary


if __name__ == "__main__":
    main()
