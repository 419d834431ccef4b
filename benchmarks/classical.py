"""Classical, hybrid and ensemble benchmark on PneumoniaMNIST and AdrenalMNIST3D.

For each dataset, on the same official validation and test splits:

- deep: the recipe of configs/ (ResNet-18 for PneumoniaMNIST, small 3D CNN for
  AdrenalMNIST3D), one run per seed, each under a short training budget;
- classical: handcrafted (radiomics-style) features of the whole image -> one classifier
  each (random forest, RBF SVM, logistic regression by default);
- hybrid: the first deep run's pooled CNN features -> RFE (32 features) -> RBF SVM;
- ensembles of every single run above: soft, weighted, stacking.

The best single run and the best ensemble are CHOSEN ON VALIDATION AUC and REPORTED ON
TEST. (A deep run's validation AUC also chose its best epoch, and a weighted/stacking
ensemble's validation AUC is cross-fitted, so the comparison leans slightly towards deep runs
and soft ensembles.) Writes benchmarks/results/classical.json with the machine and wall time;
``gan_delta_auc_mean`` is copied from benchmarks/results/gan.json when that file exists.

    python benchmarks/classical.py                       # the full protocol, ~40 min on 2 cores
    python benchmarks/classical.py --pneumonia-minutes 0.1 --adrenal-minutes 0.1 --seeds 0 \\
        --train-fraction 0.03 --classifiers logistic_regression --n-bootstrap 20 \\
        --out /tmp/classical_smoke.json                  # a smoke run (about a minute)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info, peak_rss_mb, shared_path  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

REPO = HERE.parent
RECIPES = {
    "pneumonia": REPO / "configs" / "pneumoniamnist_resnet18.yaml",
    "adrenal": REPO / "configs" / "adrenalmnist3d_small_cnn.yaml",
}


def recipe_data(dataset: str) -> Path:
    """The file the dataset's recipe trains on (AdrenalMNIST3D: the 64-voxel volumes), which
    every run of the dataset reads, so that deep, handcrafted and hybrid runs and their
    ensembles see the same images."""
    import yaml

    return shared_path(yaml.safe_load(RECIPES[dataset].read_text())["data"]["path"])


DATASETS = tuple(RECIPES)
METHODS = ("soft", "weighted", "stacking")


def _auc(run_dir: Path, split: str) -> float | None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return metrics["splits"][split]["metrics"]["auc"]["value"]


def _record(kind: str, run_dir: Path, seconds: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "run": run_dir.name,
        "path": str(run_dir),
        "val_auc": _auc(run_dir, "val"),
        "test_auc": _auc(run_dir, "test"),
        "wall_seconds": seconds,
    }


def _train(raw: dict[str, Any], kind: str) -> dict[str, Any]:
    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    t0 = time.perf_counter()
    run_dir = train_and_report(parse_config(raw), overwrite=True, progress=False)
    record = _record(kind, run_dir, time.perf_counter() - t0)
    print(f"    {kind:9s} {run_dir.name}: val AUC {record['val_auc']:.3f}", flush=True)
    return record


def _base(dataset: str, name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    return {
        "name": name,
        "seed": 0,
        "output_dir": str(work / dataset),
        "data": {
            "format": "medmnist",
            "path": str(recipe_data(dataset)),
            "train_fraction_used": args.train_fraction,
        },
        "evaluate": {"n_bootstrap": args.n_bootstrap},
    }


def deep_config(
    dataset: str, seed: int, minutes: float, args: argparse.Namespace, work: Path
) -> dict:
    """The recipe a user gets from configs/, with this run's seed, budget and folders."""
    import yaml

    raw = yaml.safe_load(RECIPES[dataset].read_text())
    base = _base(dataset, f"deep-s{seed}", args, work)
    raw.update(name=base["name"], seed=seed, output_dir=base["output_dir"])
    raw["data"].update(base["data"])
    raw["train"].update(max_minutes=minutes)
    raw["evaluate"] = base["evaluate"]
    return raw


def classical_config(dataset: str, classifier: str, args: argparse.Namespace, work: Path) -> dict:
    raw = _base(dataset, f"handcrafted-{classifier}", args, work)
    raw["features"] = {"source": "handcrafted", "classifier": {"name": classifier}}
    return raw


def hybrid_config(dataset: str, backbone: Path, args: argparse.Namespace, work: Path) -> dict:
    """CNN features of a trained run -> RFE down to 32 features -> RBF SVM."""
    raw = _base(dataset, "hybrid-rfe-svm", args, work)
    raw["features"] = {
        "source": "deep",
        "backbone": str(backbone),
        "selector": {"name": "rfe", "k": 32, "step": 0.1},
        "classifier": {"name": "svm_rbf"},
    }
    return raw


def _ensembles(singles: list[dict], dataset: str, args: argparse.Namespace, work: Path) -> list:
    from medlens.commands.ensemble import ensemble_runs

    out = []
    members = [r["path"] for r in singles]
    for method in METHODS:
        t0 = time.perf_counter()
        run_dir = ensemble_runs(
            members, method, work / dataset, n_bootstrap=args.n_bootstrap, overwrite=True
        )
        record = _record(f"ensemble-{method}", run_dir, time.perf_counter() - t0)
        weights = json.loads((run_dir / "ensemble.json").read_text())["combiner"].get("weights")
        record["weights"] = weights
        print(f"    {method:9s} ensemble: val AUC {record['val_auc']:.3f}", flush=True)
        out.append(record)
    return out


def _best(records: list[dict]) -> dict:
    """The run with the highest VALIDATION AUC (first one wins a tie)."""
    return max(records, key=lambda r: -1.0 if r["val_auc"] is None else r["val_auc"])


def run_dataset(dataset: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    minutes = args.pneumonia_minutes if dataset == "pneumonia" else args.adrenal_minutes
    print(f"[{time.strftime('%H:%M:%S')}] {dataset}", flush=True)
    deep = [_train(deep_config(dataset, s, minutes, args, work), "deep") for s in args.seeds]
    classical = [
        _train(classical_config(dataset, c, args, work), "classical") for c in args.classifiers
    ]
    hybrid = [_train(hybrid_config(dataset, Path(deep[0]["path"]), args, work), "hybrid")]
    singles = deep + classical + hybrid
    ensembles = _ensembles(singles, dataset, args, work)
    best_single, best_ensemble = _best(singles), _best(ensembles)
    return {
        "deep_minutes_per_run": minutes,
        "singles": singles,
        "ensembles": ensembles,
        "best_single": best_single,
        "best_ensemble": best_ensemble,
    }


def _gan_delta() -> float | None:
    path = HERE / "results" / "gan.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    value = (report.get("summary") or {}).get(
        "gan_delta_auc_mean", report.get("gan_delta_auc_mean")
    )
    return None if value is None else float(value)


def summarize(report: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for dataset, result in report["datasets"].items():
        out[f"{dataset}_best_single_auc"] = result["best_single"]["test_auc"]
        out[f"{dataset}_best_ensemble_auc"] = result["best_ensemble"]["test_auc"]
    if "pneumonia" in report["datasets"]:
        hybrid = [r for r in report["datasets"]["pneumonia"]["singles"] if r["kind"] == "hybrid"]
        out["hybrid_svm_pneumonia_auc"] = hybrid[0]["test_auc"]
    gan = _gan_delta()
    if gan is not None:
        out["gan_delta_auc_mean"] = gan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--pneumonia-minutes", type=float, default=6.0, help="per deep run")
    parser.add_argument("--adrenal-minutes", type=float, default=4.0, help="per deep run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="deep runs")
    parser.add_argument(
        "--classifiers",
        nargs="+",
        default=["random_forest", "svm_rbf", "logistic_regression"],
        help="one handcrafted-feature run each",
    )
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, help="data.train_fraction_used"
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the run folders here (default: temp)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "classical.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "selection": "best single run and best ensemble chosen on validation AUC, reported on test",
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="medlens-classical-") as tmp:
        work = args.workdir or Path(tmp)
        for dataset in args.datasets:
            report["datasets"][dataset] = run_dataset(dataset, args, work)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(args.out.with_suffix(".partial.json"), json.dumps(report, indent=2) + "\n")
    report["wall_minutes"] = (time.perf_counter() - t_start) / 60
    report["peak_rss_mb"] = peak_rss_mb()
    report["summary"] = summarize(report)
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
