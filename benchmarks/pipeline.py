"""The survey's composite systems on ../shared/data/wbc_cells (300 single-cell images, 5
types), each as a medlens pipeline: 5-fold stratified CV over the same outer folds, per seed.

Systems (configs/wbc/): (a) cnn: a CNN on the whole image; (b) four_phase: U-Net ->
handcrafted + deep features in nucleus, cytoplasm and cell -> SVM; (c) unet_inception: U-Net
-> crop -> Inception-V3; (d) maskrcnn_resnet50: Mask R-CNN -> crop -> ResNet-50; (e) cascade:
Mask R-CNN -> crop -> U-Net -> features -> SVM; the ensemble (mean probabilities of (a)-(e) per
fold); and gt_masks: (b) trained and tested on the reference masks (the upper bound).

Rule for tiny classes (written in configs/wbc/*.yaml, data.small_classes: exclude): a class
with fewer cases than the 5 outer folds cannot appear in every test fold nor be learned;
basophil (1 image) is left out and listed in each run's excluded.csv. Scores are over the
other 299 images and 4 types.

Every run is its own process (``medlens train``) so its wall and CPU time are its own; runs
already finished under --work from the same config are reused, so an interrupted benchmark
resumes (a run whose config in configs/wbc/ has changed since is trained again). Results that
do not cover the whole protocol say so (``protocol_complete``).

    python benchmarks/pipeline.py                         # 3 seeds x 5 folds x every system
    python benchmarks/pipeline.py --seeds 0 --folds-run 0 --systems cnn four_phase   # a part

Seeds run in different sessions (their run folders gone) are joined from their reports:

    python benchmarks/pipeline.py --merge results/pipeline.json seed2.json --out results/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

REPO = HERE.parent
CONFIGS = REPO / "configs" / "wbc"
SYSTEMS = ("cnn", "four_phase", "unet_inception", "maskrcnn_resnet50", "cascade", "gt_masks")
CONFIG_OF = {
    "cnn": "cnn_whole_image.yaml",
    "four_phase": "four_phase.yaml",
    "unet_inception": "unet_inception.yaml",
    "maskrcnn_resnet50": "maskrcnn_resnet50.yaml",
    "cascade": "cascade.yaml",
    "gt_masks": "four_phase.yaml",
}
ENSEMBLE_MEMBERS = ("cnn", "four_phase", "unet_inception", "maskrcnn_resnet50", "cascade")
SUMMARY_KEY = {
    "cnn": "wbc_bal_acc_cnn",
    "four_phase": "wbc_bal_acc_four_phase",
    "unet_inception": "wbc_bal_acc_unet_inception",
    "maskrcnn_resnet50": "wbc_bal_acc_maskrcnn",
    "cascade": "wbc_bal_acc_cascade",
    "ensemble": "wbc_bal_acc_ensemble",
    "gt_masks": "wbc_bal_acc_gt_masks",
}


def system_config(system: str, seed: int, fold: int, folds: int, out: Path) -> dict[str, Any]:
    """The shipped config of ``system`` with this run's seed, fold and folder."""
    config = yaml.safe_load((CONFIGS / CONFIG_OF[system]).read_text())
    config.update(name=system, seed=seed, output_dir=str(out))
    config["data"].update(path=str(SHARED_DATA / "wbc_cells"), fold=fold, folds=folds)
    if system == "gt_masks":
        config["stages"][0] = {"name": "segment", "kind": "segment", "source": "ground_truth"}
    return config


def run_system(system: str, seed: int, fold: int, folds: int, work: Path) -> dict[str, Any]:
    """Train one system on one outer fold in its own process.

    A finished run is reused only when it was made from the same config as the shipped one
    now gives (so an interrupted benchmark resumes); a run made from an edited config is
    trained again, and the benchmark says so.
    """
    out = work / f"seed{seed}" / f"fold{fold}"
    run_dir = out / system
    timing = out / f"{system}.timing.json"
    config = out / f"{system}.yaml"
    wanted = system_config(system, seed, fold, folds, out)
    if (run_dir / "metrics.json").is_file() and timing.is_file():
        if config.is_file() and yaml.safe_load(config.read_text()) == wanted:
            return json.loads(timing.read_text())
        print(
            f"{system} seed {seed} fold {fold}: its config changed since it ran; training again",
            flush=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(wanted))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {system} seed {seed} fold {fold}", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "medlens", "train", str(config), "--quiet", "--overwrite"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{system} seed {seed} fold {fold} failed:\n{proc.stderr[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"wall_minutes": (time.perf_counter() - t0) / 60, "cpu_minutes": cpu / 60}
    write_atomic(timing, json.dumps(result))
    print(f"    -> {json.dumps(result)}", flush=True)
    return result


def _pooled(runs: list[Path]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from medlens.commands.pipeline import read_predictions

    parts = [read_predictions(r) for r in runs]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        parts[0][2],
    )


def _ensemble_runs(
    work: Path, seed: int, folds_run: list[int]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from medlens.pipeline.ensemble import mean_probabilities

    truth: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    names: list[str] = []
    for fold in folds_run:
        members = [work / f"seed{seed}" / f"fold{fold}" / s for s in ENSEMBLE_MEMBERS]
        rows, names, mean = mean_probabilities(members)
        truth.append(np.array([names.index(r["truth"]) for r in rows]))
        probs.append(mean)
    return np.concatenate(truth), np.concatenate(probs), names


def summarise(
    work: Path, systems: list[str], seeds: list[int], folds_run: list[int], n_bootstrap: int = 1000
) -> dict[str, Any]:
    """Per system: balanced accuracy, macro-F1, accuracy of the test predictions pooled over
    the folds run, per seed (mean, SD) and with a bootstrap CI on seed 0's pooled cases; the
    pooled confusion; Dice per region of each segmenting system."""
    from medlens.pipeline.run import read_metrics
    from medlens.pipeline.scoring import class_metrics

    names_all = [*systems, *(["ensemble"] if set(ENSEMBLE_MEMBERS) <= set(systems) else [])]
    out: dict[str, Any] = {}
    for system in names_all:
        per_seed = []
        for seed in seeds:
            if system == "ensemble":
                truth, probs, names = _ensemble_runs(work, seed, folds_run)
            else:
                runs = [work / f"seed{seed}" / f"fold{f}" / system for f in folds_run]
                truth, probs, names = _pooled(runs)
            per_seed.append(
                class_metrics(truth, probs, names, n_bootstrap if seed == seeds[0] else 0, seed)
            )
        entry: dict[str, Any] = {
            k: {
                "mean": statistics.fmean(m[k]["value"] for m in per_seed),
                "sd": statistics.stdev(m[k]["value"] for m in per_seed)
                if len(per_seed) > 1
                else 0.0,
                "values": [m[k]["value"] for m in per_seed],
                "ci_first_seed": [per_seed[0][k]["ci_low"], per_seed[0][k]["ci_high"]],
            }
            for k in ("balanced_accuracy", "f1", "accuracy")
        }
        entry["n_cases_per_seed"] = per_seed[0]["n"]
        entry["per_class_first_seed"] = per_seed[0]["per_class"]
        entry["confusion_first_seed"] = per_seed[0]["confusion"]
        entry["class_names"] = per_seed[0]["class_names"]
        if system != "ensemble":
            metrics = [
                read_metrics(work / f"seed{s}" / f"fold{f}" / system)
                for s in seeds
                for f in folds_run
            ]
            dice: dict[str, dict[str, list[float]]] = {}
            for m in metrics:
                for stage, regions in m["segmentation"].items():
                    for region, s in regions.items():
                        dice.setdefault(stage, {}).setdefault(region, []).append(s["mean"])
            entry["dice"] = {
                st: {r: statistics.fmean(v) for r, v in regions.items()}
                for st, regions in dice.items()
            }
            with_ref = [
                m["with_reference_masks"]["balanced_accuracy"]["value"]
                for m in metrics
                if "with_reference_masks" in m
            ]
            if with_ref:
                entry["bal_acc_same_classifier_reference_masks_fold_mean"] = statistics.fmean(
                    with_ref
                )
                sources: dict[str, int] = {}
                for m in metrics:
                    for k, v in m["error_sources"].items():
                        sources[k] = sources.get(k, 0) + v
                entry["error_sources"] = sources
            timings = [
                json.loads((work / f"seed{s}" / f"fold{f}" / f"{system}.timing.json").read_text())
                for s in seeds
                for f in folds_run
            ]
            entry["wall_minutes_per_fold"] = max(t["wall_minutes"] for t in timings)
            entry["runs_wall_minutes"] = sum(t["wall_minutes"] for t in timings)
            entry["cpu_minutes_per_fold"] = max(t["cpu_minutes"] for t in timings)
        out[system] = entry
    return out


def _weighted_mean(parts: list[tuple[float, int]]) -> float:
    return sum(v * n for v, n in parts) / sum(n for _, n in parts)


def merge_system(entries: list[dict[str, Any]], runs: list[int]) -> dict[str, Any]:
    """One system's entries from reports over disjoint seeds (in seed order) as one entry.

    ``runs[i]`` is the number of (seed, fold) runs behind ``entries[i]``: means over runs
    (Dice, the reference-mask fold mean) are weighted by it. Per-seed values are joined and
    their mean and SD recomputed; what is kept of the first seed only (CI, confusion, per
    class) comes from the first entry; counts add up; the longest fold is the longest of all.
    """
    first = entries[0]
    out: dict[str, Any] = dict(first)
    for k in ("balanced_accuracy", "f1", "accuracy"):
        values = [v for e in entries for v in e[k]["values"]]
        out[k] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
            "ci_first_seed": first[k]["ci_first_seed"],
        }
    if "dice" in first:
        out["dice"] = {
            stage: {
                region: _weighted_mean(
                    [(e["dice"][stage][region], n) for e, n in zip(entries, runs, strict=True)]
                )
                for region in regions
            }
            for stage, regions in first["dice"].items()
        }
    key = "bal_acc_same_classifier_reference_masks_fold_mean"
    if key in first:
        out[key] = _weighted_mean([(e[key], n) for e, n in zip(entries, runs, strict=True)])
        out["error_sources"] = {
            k: sum(e["error_sources"][k] for e in entries) for k in first["error_sources"]
        }
    for k in ("wall_minutes_per_fold", "cpu_minutes_per_fold"):
        if k in first:
            out[k] = max(e[k] for e in entries)
    if "runs_wall_minutes" in first:
        out["runs_wall_minutes"] = sum(e["runs_wall_minutes"] for e in entries)
    return out


def merge_reports(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Reports of this benchmark over disjoint seeds (same folds, systems, classes) as one,
    as if every run had been summarised together; each part's machine and times are kept.

    Raises:
        ValueError: parts that share a seed, or differ in folds, systems or classes.
    """
    parts = sorted(parts, key=lambda r: r["seeds"][0])
    seeds = [s for r in parts for s in r["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the reports share seeds: {[r['seeds'] for r in parts]}")
    for r in parts[1:]:
        for k in ("folds", "folds_run"):
            if r[k] != parts[0][k]:
                raise ValueError(f"the reports differ in {k}: {r[k]} and {parts[0][k]}")
        if list(r["systems"]) != list(parts[0]["systems"]):
            raise ValueError(
                f"the reports differ in systems: {list(r['systems'])} and {list(parts[0]['systems'])}"
            )
        for name, e in r["systems"].items():
            if e["class_names"] != parts[0]["systems"][name]["class_names"]:
                raise ValueError(f"{name}: the reports differ in classes")
    runs = [len(r["seeds"]) * len(r["folds_run"]) for r in parts]
    systems = {
        name: merge_system([r["systems"][name] for r in parts], runs)
        for name in parts[0]["systems"]
    }
    folds_run = parts[0]["folds_run"]
    report = {
        "machine": parts[-1]["machine"],
        "seeds": seeds,
        "folds": parts[0]["folds"],
        "folds_run": folds_run,
        "protocol_complete": sorted(seeds) == [0, 1, 2]
        and folds_run == list(range(5))
        and set(SYSTEMS) <= set(systems),
        "small_class_rule": parts[0]["small_class_rule"],
        "wall_minutes": sum(r["wall_minutes"] for r in parts),
        "runs_wall_minutes": sum(r["runs_wall_minutes"] for r in parts),
        "systems": systems,
        "parts": [
            {
                "seeds": r["seeds"],
                "machine": r["machine"],
                "runs_wall_minutes": r["runs_wall_minutes"],
            }
            for r in parts
        ],
    }
    report["summary"] = _summary_keys(systems)
    return report


def _summary_keys(systems: dict[str, Any]) -> dict[str, float | None]:
    keys: dict[str, float | None] = {v: None for v in SUMMARY_KEY.values()}
    keys.update(wbc_dice_nucleus=None, wbc_dice_cell=None)
    for system, entry in systems.items():
        keys[SUMMARY_KEY[system]] = entry["balanced_accuracy"]["mean"]
    segmenters = [e["dice"]["segment"] for e in systems.values() if "segment" in e.get("dice", {})]
    if segmenters:
        best = max(segmenters, key=lambda d: d["nucleus"])
        keys["wbc_dice_nucleus"], keys["wbc_dice_cell"] = best["nucleus"], best["cell"]
    return keys


def _markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    joined = "parts" in report
    lines = [
        "# WBC pipelines benchmark",
        "",
        f"{'Machine of the newest part' if joined else 'Machine'}: {m['cpu']}, {m['cores']} "
        f"cores, torch {m['torch']}, {m['date']}. "
        f"Seeds {report['seeds']}, outer folds run {report['folds_run']} of {report['folds']}; "
        f"protocol complete: {report['protocol_complete']}. Wall time of the runs "
        f"{report['runs_wall_minutes']:.1f} min ("
        + ("the parts' invocations" if joined else "this invocation")
        + f" {report['wall_minutes']:.1f} min; finished runs are reused).",
        "",
        *(
            [
                "Joined from reports over disjoint seeds, each summarised from its own runs: "
                + "; ".join(
                    f"seeds {p['seeds']} on {p['machine']['date']}, {p['machine']['cpu']} "
                    f"({p['runs_wall_minutes']:.1f} min of runs)"
                    for p in report["parts"]
                )
                + ".",
                "",
            ]
            if joined
            else []
        ),
        "Balanced accuracy over the test predictions pooled across the folds run (mean ± SD over "
        "seeds; 95% bootstrap CI of the first seed), macro-F1, accuracy; the longest fold's wall "
        "and CPU minutes.",
        "",
        "| system | balanced accuracy | CI (seed 0) | macro-F1 | accuracy | wall min / fold | CPU min / fold |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in report["systems"].items():
        b, f, a = e["balanced_accuracy"], e["f1"], e["accuracy"]
        lines.append(
            f"| {name} | {b['mean']:.3f} ± {b['sd']:.3f} | {b['ci_first_seed'][0]:.3f}–{b['ci_first_seed'][1]:.3f} "
            f"| {f['mean']:.3f} | {a['mean']:.3f} | {e.get('wall_minutes_per_fold', float('nan')):.1f} "
            f"| {e.get('cpu_minutes_per_fold', float('nan')):.1f} |"
        )
    lines += ["", "Dice per region (mean over test cases, folds and seeds):", ""]
    for name, e in report["systems"].items():
        for stage, regions in e.get("dice", {}).items():
            lines.append(
                f"- {name} / {stage}: " + ", ".join(f"{r} {v:.3f}" for r, v in regions.items())
            )
    lines += ["", "Confusion (first seed, rows: reference, columns: predicted):", ""]
    for name, e in report["systems"].items():
        lines.append(f"- {name} ({', '.join(e['class_names'])}): {e['confusion_first_seed']}")
    lines += ["", "Summary: `" + json.dumps(report["summary"]) + "`", ""]
    return "\n".join(lines)


def build_report(
    work: Path,
    systems: list[str],
    seeds: list[int],
    folds: int,
    folds_run: list[int],
    wall_minutes: float,
    n_bootstrap: int = 1000,
) -> dict[str, Any]:
    """The benchmark's report on the finished runs under ``work`` (``wall_minutes``: this
    invocation's wall time; ``n_bootstrap`` resamples for the first seed's CIs)."""
    scores = summarise(work, systems, seeds, folds_run, n_bootstrap)
    report = {
        "machine": machine_info(),
        "seeds": seeds,
        "folds": folds,
        "folds_run": folds_run,
        "protocol_complete": seeds == [0, 1, 2]
        and folds_run == list(range(5))
        and list(systems) == list(SYSTEMS),
        "small_class_rule": "classes with fewer cases than the outer folds are left out and listed (basophil: 1 image)",
        "wall_minutes": wall_minutes,
        "runs_wall_minutes": sum(e.get("runs_wall_minutes", 0.0) for e in scores.values()),
        "systems": scores,
    }
    report["summary"] = _summary_keys(scores)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--folds-run", type=int, nargs="+", default=None)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/medlens-pipeline-bench"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pipeline.json")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="join reports of this benchmark over disjoint seeds into --out; trains nothing",
    )
    args = parser.parse_args()
    if args.merge:
        try:
            report = merge_reports([json.loads(p.read_text()) for p in args.merge])
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"error: --merge {' '.join(map(str, args.merge))}: {exc!r}")
        _write(report, args.out)
        return
    folds_run = args.folds_run if args.folds_run is not None else list(range(args.folds))
    t0 = time.perf_counter()
    for seed in args.seeds:
        for fold in folds_run:
            for system in args.systems:
                run_system(system, seed, fold, args.folds, args.work)
    report = build_report(
        args.work, args.systems, args.seeds, args.folds, folds_run, (time.perf_counter() - t0) / 60
    )
    _write(report, args.out)


def _write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    write_atomic(out.with_suffix(".md"), _markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
