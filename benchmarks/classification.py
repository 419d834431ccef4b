"""Classification benchmark: medlens vs a hand-written baseline vs MedMNIST v2's numbers.

Trains on ../shared/data/pneumoniamnist_subset and ../shared/data/adrenalmnist3d on this
machine's CPU, every run under the same wall-time budget, each in its own process so its
peak memory is its own. Writes benchmarks/results/classification.json (+ .md).

    python benchmarks/classification.py                 # full protocol (3 seeds per dataset)
    python benchmarks/classification.py --minutes 2 --seeds 0 --quick   # a smoke run

``--reuse REPORT`` takes the runs an earlier report (final or ``.partial.json``) finished with
the same ``--minutes``, matched by dataset, method and seed, and trains only the rest: a
protocol split over several sessions ends in one report. Reused runs say so (``"reused"``).
``--reuse-kind baseline`` takes only the baseline's runs from it: a changed medlens recipe is
trained again beside the baseline runs it is compared with.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info, peak_rss_mb, shared_path  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

REPO = HERE.parent
#: The datasets, and the files the plain baseline trains on; medlens trains on the file its
#: recipe in configs/ names (for AdrenalMNIST3D the 64^3 masks, resampled to 28^3).
DATASETS = {
    "pneumonia": SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz",
    "adrenal": SHARED_DATA / "adrenalmnist3d" / "adrenalmnist3d.npz",
}
PAPER = {  # MedMNIST v2 (Yang et al. 2023), test AUC / ACC at 0.5
    "pneumonia": {
        "ResNet-18 (28)": (0.944, 0.854),
        "ResNet-18 (224)": (0.956, 0.864),
        "ResNet-50 (28)": (0.948, 0.854),
        "ResNet-50 (224)": (0.962, 0.884),
        "auto-sklearn": (0.942, 0.855),
        "AutoKeras": (0.947, 0.878),
        "Google AutoML Vision": (0.991, 0.946),
    },
    "adrenal": {
        "ResNet-18 3D": (0.827, 0.721),
        "ResNet-18 ACS": (0.839, 0.754),
        "ResNet-50 3D": (0.828, 0.745),
        "auto-sklearn": (0.828, 0.802),
        "AutoKeras": (0.804, 0.705),
    },
}


RECIPES = {
    "pneumonia": REPO / "configs" / "pneumoniamnist_resnet18.yaml",
    "adrenal": REPO / "configs" / "adrenalmnist3d_small_cnn.yaml",
}


def medlens_config(dataset: str, seed: int, minutes: float, out: Path, **extra: Any) -> dict:
    """The recipe a user gets from configs/, with this run's seed, budget and folders.

    ``extra`` overrides keys for exploration runs: ``{"train__lr": 0.003}``.
    """
    import yaml

    cfg = yaml.safe_load(RECIPES[dataset].read_text())
    cfg["name"] = f"{dataset}-s{seed}"
    cfg["data"]["path"] = str(shared_path(cfg["data"]["path"]))  # the recipe's own file
    cfg["train"]["max_minutes"] = minutes
    cfg.update(seed=seed, output_dir=str(out))
    for dotted, value in extra.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return cfg


def held_out_figures(run_dir: Path) -> dict:
    """The test and validation figures of a finished run folder (a run or an ensemble).

    Sensitivity and specificity come at both thresholds, so a threshold rule can be judged
    on what it does to each class and not on accuracy alone (accuracy rewards calling fewer
    of a rare class: ``benchmarks/adrenal_threshold_cv.py``)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    at_threshold, at_half = test["metrics"], test["metrics_at_0.5"]
    return {
        "test_auc": at_threshold["auc"]["value"],
        "test_auc_ci": [at_threshold["auc"]["ci_low"], at_threshold["auc"]["ci_high"]],
        "test_acc_at_val_threshold": at_threshold["accuracy"]["value"],
        "test_acc_at_0.5": at_half["accuracy"],
        "test_sens_spec_at_val_threshold": [
            at_threshold["sensitivity"]["value"],
            at_threshold["specificity"]["value"],
        ],
        "test_sens_spec_at_0.5": [at_half["sensitivity"], at_half["specificity"]],
        "val_auc": metrics["splits"]["val"]["metrics"]["auc"]["value"],
        "val_threshold": metrics["threshold"],
    }


def _summarise_run(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        **held_out_figures(run_dir),
        "epochs": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "train_minutes": metrics["train_seconds"] / 60,
    }


def child(args: argparse.Namespace) -> None:
    """One run in this process; prints its JSON result on the last line."""
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.child == "baseline":
        from baseline import run_baseline

        result = run_baseline(str(DATASETS[args.dataset]), args.minutes, seed=args.seed)
    else:
        from medlens.commands.train import train_and_report
        from medlens.config import parse_config

        extra = json.loads(args.extra) if args.extra else {}
        cfg = medlens_config(args.dataset, args.seed, args.minutes, Path(args.workdir), **extra)
        run_dir = train_and_report(parse_config(cfg), overwrite=True, progress=False)
        result = _summarise_run(run_dir)
    result.update(wall_minutes=(time.perf_counter() - t0) / 60, peak_rss_mb=peak_rss_mb())
    print(json.dumps(result))


def _spawn(
    kind: str,
    dataset: str,
    seed: int,
    minutes: float,
    workdir: Path,
    threads: int,
    extra: dict | None = None,
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--dataset",
        dataset,
        "--seed",
        str(seed),
        "--minutes",
        str(minutes),
        "--workdir",
        str(workdir),
        "--threads",
        str(threads),
    ]
    if extra:
        cmd += ["--extra", json.dumps(extra)]
    print(f"[{time.strftime('%H:%M:%S')}] {kind} {dataset} seed {seed} ({minutes} min)", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {dataset} seed {seed} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seed"] = seed
    print(f"    -> {json.dumps(result)}", flush=True)
    return result


def reusable_runs(path: Path, minutes: float) -> dict[tuple[str, str, int], dict]:
    """Finished runs of an earlier report, keyed by (dataset, "medlens" | "baseline", seed).

    Reads a final report (``datasets``), a partial one (``runs_so_far``) or a one-dataset
    report (``dataset`` with ``medlens``/``baseline``). A run without its own ``seed`` gets
    the report's seed list in order, as the benchmark ran them.

    Raises:
        SystemExit: the report was made with another budget per run.
    """
    report = json.loads(path.read_text())
    if float(report["minutes_per_run"]) != minutes:
        raise SystemExit(
            f"{path}: its runs had {report['minutes_per_run']} min each, not --minutes {minutes}"
        )
    if "runs_so_far" in report:
        per_dataset = {
            d: {k: {"runs": r} for k, r in v.items()} for d, v in report["runs_so_far"].items()
        }
    elif "datasets" in report:
        per_dataset = report["datasets"]
    else:
        per_dataset = {
            report["dataset"]: {k: report[k] for k in ("medlens", "baseline") if k in report}
        }
    seed_lists = {"medlens": report.get("seeds", []), "baseline": report.get("baseline_seeds", [])}
    found: dict[tuple[str, str, int], dict] = {}
    for dataset, methods in per_dataset.items():
        for kind in ("medlens", "baseline"):
            for i, run in enumerate(methods.get(kind, {}).get("runs", [])):
                seed = run.get("seed", seed_lists[kind][i] if i < len(seed_lists[kind]) else None)
                if seed is not None:
                    found[(dataset, kind, int(seed))] = {**run, "seed": int(seed)}
    return found


def _mean_sd(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def _aggregate(runs: list[dict]) -> dict:
    keys = ("test_auc", "test_acc_at_val_threshold", "test_acc_at_0.5", "train_minutes")
    return {"runs": runs, **{k: _mean_sd([r[k] for r in runs]) for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--pretext-minutes", type=float, default=5.0)
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "classification.json")
    parser.add_argument("--child", choices=["medlens", "baseline"])
    parser.add_argument("--dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir")
    parser.add_argument("--extra")
    parser.add_argument("--reuse", type=Path, action="append", default=[], metavar="REPORT")
    parser.add_argument(
        "--reuse-kind",
        choices=["medlens", "baseline"],
        action="append",
        help="take only these methods' runs from --reuse (default: both)",
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from transfer import run_transfer_benchmark

    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "minutes_per_run": args.minutes,
        "seeds": args.seeds,
        "baseline_seeds": args.baseline_seeds,
        "reused_from": [str(p) for p in args.reuse],
        "reused_kinds": args.reuse_kind or ["medlens", "baseline"],
        "datasets": {},
    }
    reused: dict[tuple[str, str, int], dict] = {}
    for path in args.reuse:
        reused.update(reusable_runs(path, args.minutes))
    reused = {key: run for key, run in reused.items() if key[1] in report["reused_kinds"]}
    with tempfile.TemporaryDirectory(prefix="medlens-bench-") as tmp:
        work = Path(tmp)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets:
            finished: dict[str, list[dict]] = {"medlens": [], "baseline": []}
            plan = [("medlens", s) for s in args.seeds] + [
                ("baseline", s) for s in args.baseline_seeds
            ]
            for kind, seed in plan:
                if (dataset, kind, seed) in reused:
                    print(f"{kind} {dataset} seed {seed}: reused from --reuse", flush=True)
                    finished[kind].append({**reused[(dataset, kind, seed)], "reused": True})
                    continue
                finished[kind].append(_spawn(kind, dataset, seed, args.minutes, work, args.threads))
                # Each run's figures survive a later failure or an interrupted session.
                report["runs_so_far"] = {**report.get("runs_so_far", {}), dataset: finished}
                write_atomic(
                    args.out.with_suffix(".partial.json"), json.dumps(report, indent=2) + "\n"
                )
            report["datasets"][dataset] = {
                "medlens": _aggregate(finished["medlens"]),
                "baseline": _aggregate(finished["baseline"]),
                "paper": PAPER[dataset],
            }
        report.pop("runs_so_far", None)
        if not args.skip_transfer:
            report["transfer"] = run_transfer_benchmark(
                work,
                seeds=args.seeds,
                threads=args.threads,
                pretext_minutes=args.pretext_minutes,
                epochs=args.finetune_epochs,
            )
    report["wall_minutes"] = (time.perf_counter() - t_start) / 60
    report["summary"] = _summary(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    write_atomic(args.out.with_suffix(".md"), _markdown(report))
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(_markdown(report))


def _summary(report: dict) -> dict:
    out: dict[str, float] = {}
    for dataset, d in report["datasets"].items():
        out[f"{dataset}_test_auc"] = d["medlens"]["test_auc"]["mean"]
        out[f"{dataset}_test_acc"] = d["medlens"]["test_acc_at_val_threshold"]["mean"]
        out[f"{dataset}_test_acc_at_0.5"] = d["medlens"]["test_acc_at_0.5"]["mean"]
        out[f"{dataset}_train_minutes"] = d["medlens"]["train_minutes"]["mean"]
        out[f"baseline_{dataset}_test_auc"] = d["baseline"]["test_auc"]["mean"]
        out[f"baseline_{dataset}_test_acc"] = d["baseline"]["test_acc_at_val_threshold"]["mean"]
    if "transfer" in report:
        out["tl_scratch_auc_mean"] = report["transfer"]["scratch"]["test_auc"]["mean"]
        out["tl_pretrained_auc_mean"] = report["transfer"]["pretrained"]["test_auc"]["mean"]
    return out


def _fmt(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['sd']:.3f}"


def _markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Classification benchmark",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['date']}. "
        f"Budget {report['minutes_per_run']} min of training per run; medlens seeds {report['seeds']}, "
        f"baseline seeds {report['baseline_seeds']}. Total wall time {report.get('wall_minutes', 0):.1f} min.",
        "",
        "ACC at the validation-chosen threshold (Youden J) and at the fixed 0.5 that MedMNIST reports. "
        "PneumoniaMNIST here lacks 826 of the 1,214 normal training images (same val/test splits).",
        "",
        "| dataset | method | test AUC | test ACC (val threshold) | test ACC (0.5) | train min | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, d in report["datasets"].items():
        for who in ("medlens", "baseline"):
            r = d[who]
            rss = max(x["peak_rss_mb"] for x in r["runs"])
            lines.append(
                f"| {dataset} | {who} | {_fmt(r['test_auc'])} | {_fmt(r['test_acc_at_val_threshold'])} | "
                f"{_fmt(r['test_acc_at_0.5'])} | {_fmt(r['train_minutes'])} | {rss:.0f} |"
            )
        for name, (auc, acc) in d["paper"].items():
            lines.append(f"| {dataset} | MedMNIST v2 {name} | {auc:.3f} | — | {acc:.3f} | — | — |")
    if "transfer" in report:
        t = report["transfer"]
        lines += [
            "",
            "## Transfer learning (10% of the PneumoniaMNIST training split)",
            "",
            t.get("description", ""),
            "",
            "| start | test AUC (mean ± sd) | test ACC (val threshold) |",
            "|---|---|---|",
            f"| from scratch | {_fmt(t['scratch']['test_auc'])} | {_fmt(t['scratch']['test_acc_at_val_threshold'])} |",
            f"| medlens checkpoint | {_fmt(t['pretrained']['test_auc'])} | {_fmt(t['pretrained']['test_acc_at_val_threshold'])} |",
        ]
    lines += ["", "Summary: `" + json.dumps(report["summary"]) + "`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
