"""Group reweighting (``train.group_reweighting``) against an under-represented site.

Real PneumoniaMNIST images get a synthetic ``site`` attribute. Site B is a second scanner:
its images are contrast-inverted (255 - x) and lightly blurred, and it holds only
``--minority`` (default 10%) of the training cases but half of the validation and test
cases, drawn at random within each class. A small_cnn is trained for a fixed number of
epochs on the same cases with and without ``train.group_reweighting: site`` (every (site,
class) cell drawn equally often), ``--seeds`` seeds each; ``medlens.audit.audit_run`` then
measures each site's test AUC and TPR and the gaps between the sites, at the run's own
(validation-chosen) threshold.

    python benchmarks/group_reweighting.py             # 5 seeds x 2 arms (about 10 minutes)
    python benchmarks/group_reweighting.py --quick     # 1 seed, 1 epoch: a smoke test

Writes benchmarks/results/group_reweighting.json (``--quick``: group_reweighting_quick.json)
and prints the per-arm means with the per-seed values.
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
from scipy import ndimage

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402

NPZ = SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"


def site_b(image: np.ndarray) -> np.ndarray:
    """The second scanner: inverted contrast, Gaussian blur (sigma 0.7 px), uint8."""
    blurred = ndimage.gaussian_filter(255.0 - image.astype(float), 0.7)
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def write_manifest(folder: Path, minority: float, seed: int) -> Path:
    """PNG files and manifest.csv (path, label, split, site); the site draw is seeded."""
    rng = np.random.default_rng(seed)
    rows = []
    with np.load(NPZ) as data:
        for split in ("train", "val", "test"):
            images, labels = data[f"{split}_images"], data[f"{split}_labels"].reshape(-1)
            share = minority if split == "train" else 0.5
            sites = np.full(len(labels), "A", dtype=object)
            for label in np.unique(labels):  # the same share of B in each class
                members = np.flatnonzero(labels == label)
                chosen = rng.choice(members, size=round(share * members.size), replace=False)
                sites[chosen] = "B"
            (folder / split).mkdir(parents=True, exist_ok=True)
            for i, (image, label, site) in enumerate(zip(images, labels, sites, strict=True)):
                pixels = site_b(image) if site == "B" else image
                path = folder / split / f"{i:05d}.png"
                PILImage.fromarray(pixels).save(path)
                rows.append({"path": str(path), "label": int(label), "split": split, "site": site})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def train_and_audit(
    manifest: Path, out: Path, seed: int, reweight: bool, epochs: int
) -> dict[str, Any]:
    import torch

    from medlens.audit.run_audit import audit_run
    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    torch.set_num_threads(2)
    name = f"{'reweighted' if reweight else 'plain'}-s{seed}"
    config = {
        "name": name,
        "seed": seed,
        "output_dir": str(out),
        "data": {
            "format": "csv",
            "path": str(manifest),
            "subgroup_columns": ["site"],
            "class_names": ["normal", "pneumonia"],
        },
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "augment": [{"name": "random_flip", "axes": [-1], "p": 0.5}],
        "model": {"name": "small_cnn"},
        "train": {
            "epochs": epochs,
            "batch_size": 64,
            "early_stopping_patience": None,
            "group_reweighting": "site" if reweight else None,
        },
        "evaluate": {"n_bootstrap": 200},
    }
    start = time.perf_counter()
    run = train_and_report(parse_config(config), progress=False)
    seconds = time.perf_counter() - start
    audit = audit_run(run, ["site"], n_bootstrap=1000, seed=seed, plots=False)
    groups = {
        g.group: {m: g.metrics[m].value for m in ("auc", "tpr", "specificity")}
        for g in audit.groups
    }
    gaps = {
        g.name: {"difference": g.difference, "ci": [g.ci_low, g.ci_high], "flagged": g.flagged}
        for g in audit.gaps
    }
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "test_auc": metrics["splits"]["test"]["metrics"]["auc"]["value"],
        "groups": groups,
        "gaps": gaps,
    }


def summarize(results: dict[str, list[dict]]) -> dict[str, Any]:
    def values(arm: str, get) -> list[float]:
        return [round(float(get(r)), 4) for r in results[arm]]

    def stat(v: list[float]) -> dict[str, Any]:
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return {"mean": round(statistics.mean(v), 4), "sd": round(sd, 4), "each": v}

    out: dict[str, Any] = {}
    for arm in results:
        out[arm] = {
            "test_auc": stat(values(arm, lambda r: r["test_auc"])),
            "auc_site_A": stat(values(arm, lambda r: r["groups"]["A"]["auc"])),
            "auc_site_B": stat(values(arm, lambda r: r["groups"]["B"]["auc"])),
            "auc_gap": stat(values(arm, lambda r: r["gaps"]["auc"]["difference"])),
            "tpr_gap": stat(values(arm, lambda r: r["gaps"]["equal_opportunity"]["difference"])),
            "auc_gap_flagged": [r["gaps"]["auc"]["flagged"] for r in results[arm]],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--minority", type=float, default=0.10, help="site B share of train")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs = 1, 1
    if not NPZ.is_file():
        raise SystemExit(f"PneumoniaMNIST not found at {NPZ} (set MEDLENS_SHARED_DATA)")
    out = args.out or HERE / "results" / (
        "group_reweighting_quick.json" if args.quick else "group_reweighting.json"
    )
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="medlens-reweighting-"))
    results: dict[str, list[dict]] = {"plain": [], "reweighted": []}
    try:
        for seed in range(args.seeds):
            manifest = write_manifest(work / f"data-s{seed}", args.minority, seed)
            for arm in ("plain", "reweighted"):
                r = train_and_audit(manifest, work / "runs", seed, arm == "reweighted", args.epochs)
                results[arm].append(r)
                g = r["groups"]
                print(
                    f"seed {seed} {arm:10s}: test AUC {r['test_auc']:.3f}, site A AUC "
                    f"{g['A']['auc']:.3f} TPR {g['A']['tpr']:.3f}, site B AUC {g['B']['auc']:.3f} "
                    f"TPR {g['B']['tpr']:.3f}, AUC gap {r['gaps']['auc']['difference']:.3f} "
                    f"({r['seconds']} s)",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarize(results)
    report = {
        "machine": machine_info(),
        "setup": {
            "minority_share_train": args.minority,
            "site_b": "255 - x, Gaussian blur sigma 0.7 px",
            "model": "small_cnn, 28 px",
            "epochs": args.epochs,
            "seeds": args.seeds,
            "threshold": "the run's own (Youden on validation)",
        },
        "runs": results,
        "summary": summary,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n=== summary (mean ± sd over seeds) ===")
    for arm, s in summary.items():
        print(
            f"{arm:10s}: test AUC {s['test_auc']['mean']:.3f} ± {s['test_auc']['sd']:.3f}; "
            f"site A {s['auc_site_A']['mean']:.3f}, site B {s['auc_site_B']['mean']:.3f}; "
            f"AUC gap {s['auc_gap']['mean']:.3f} ± {s['auc_gap']['sd']:.3f} "
            f"{s['auc_gap']['each']}; TPR gap {s['tpr_gap']['mean']:.3f} {s['tpr_gap']['each']}"
        )
    print(f"written: {out} ({report['wall_seconds']} s)")


if __name__ == "__main__":
    main()
