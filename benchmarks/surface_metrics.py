"""Surface-metric speed benchmark: medlens vs MONAI's CPU HD95 and ASSD, same masks, same run.

For 3D masks of 128^3 and 256^3 voxels — spheres and random blobs (thresholded smooth noise),
isotropic and anisotropic spacing, plus a poor prediction far from its reference — it times
``medlens.metrics.surface.hausdorff_distance_95`` against
``monai.metrics.compute_hausdorff_distance(percentile=95)`` and
``average_symmetric_surface_distance`` against
``compute_average_surface_distance(symmetric=True)``, in this process, median of several
repeats (time.perf_counter), one thread each; checks that every value agrees (HD, HD95, ASSD,
NSD; max relative difference); and measures the peak memory of one HD95 call of each, in a
fresh child process (peak RSS during the call minus the RSS before it).

Writes benchmarks/results/surface_metrics.json (``--quick``: 64^3 only, written to
surface_metrics_quick.json so that a smoke run never replaces the full figures).

    python benchmarks/surface_metrics.py            # 128^3 and 256^3
    python benchmarks/surface_metrics.py --quick    # 64^3, about a minute
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info  # noqa: E402

ISOTROPIC = (1.0, 1.0, 1.0)
ANISOTROPIC = (0.8, 0.8, 2.5)  # thick-slice CT: 0.8 mm in-plane, 2.5 mm slices
CASES = {  # name: (shape kind, spacing)
    "sphere": ("sphere", ISOTROPIC),
    "sphere_anisotropic": ("sphere", ANISOTROPIC),
    "sphere_poor": ("sphere_poor", ISOTROPIC),
    "far_apart": ("far_apart", ISOTROPIC),
    "far_apart_anisotropic": ("far_apart", ANISOTROPIC),
    "mostly_empty": ("mostly_empty", ISOTROPIC),
    "missed_island": ("missed_island", ISOTROPIC),
    "blobs": ("blobs", ISOTROPIC),
    "blobs_anisotropic": ("blobs", ANISOTROPIC),
}
TOLERANCE_MM = 2.0
REL_TOLERANCE = 1e-6


def ball(n: int, centre_mm: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for _ in spacing)]
    return (
        sum(((g * s - c) ** 2) for g, s, c in zip(grid, spacing, centre_mm, strict=True))
        <= radius_mm**2
    )


def make_masks(kind: str, n: int, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference) of ``n``^3 voxels, seeded.

    sphere: a ball of radius 0.3 of the smallest extent; the prediction 2 mm smaller and moved
    2 voxels along the first axis. sphere_poor: 8 mm smaller and moved 4 voxels (most surface
    voxels farther than the neighbourhood search). far_apart: two balls of radius 0.12 of the
    extent whose centres lie 0.45 of the extent apart (every surface voxel far from the other
    surface: a prediction on the wrong organ). mostly_empty: a ball of radius 3 mm in the
    corner region and its prediction moved 6 mm (almost the whole volume empty). missed_island:
    the reference is a ball plus a small far island, the prediction the ball alone. blobs:
    smooth noise (sigma n/32 voxels) above 0; the prediction thresholds a noisier, re-smoothed
    copy (boundary errors of a few voxels and small false-positive and missed islands).
    """
    extent = np.array(spacing) * n
    if kind == "far_apart":
        radius = 0.12 * extent.min()
        a = extent * np.array([0.25, 0.5, 0.5])
        b = a + np.array([0.45 * extent[0], 0.0, 0.0])
        return ball(n, a, radius, spacing), ball(n, b, radius, spacing)
    if kind == "mostly_empty":
        centre = extent * 0.2
        return ball(n, centre + np.array([6.0, 0.0, 0.0]), 3.0, spacing), ball(
            n, centre, 3.0, spacing
        )
    if kind == "missed_island":
        centre, radius = extent / 2, 0.25 * extent.min()
        island = extent * np.array([0.9, 0.5, 0.5])
        main = ball(n, centre, radius, spacing)
        return main, main | ball(n, island, 3.0, spacing)
    if kind.startswith("sphere"):
        centre = extent / 2
        radius = 0.3 * extent.min()
        shrink, shift = (8.0, 4) if kind == "sphere_poor" else (2.0, 2)
        moved = centre + np.array([shift * spacing[0], 0.0, 0.0])
        return ball(n, moved, radius - shrink, spacing), ball(n, centre, radius, spacing)
    from scipy import ndimage

    rng = np.random.default_rng(n)
    field = ndimage.gaussian_filter(rng.standard_normal((n,) * 3, dtype=np.float32), n / 32)
    field /= field.std()
    noise = rng.standard_normal((n,) * 3, dtype=np.float32)
    noisy = ndimage.gaussian_filter(field + 0.5 * noise, 1.0)
    return noisy > 0.1, field > 0


def monai_calls(pred: np.ndarray, ref: np.ndarray, spacing) -> dict[str, Callable[[], float]]:
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    y_pred, y = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    common = {"include_background": True, "spacing": list(spacing)}
    return {
        "hd95": lambda: compute_hausdorff_distance(y_pred, y, percentile=95, **common).item(),
        "assd": lambda: compute_average_surface_distance(
            y_pred, y, symmetric=True, **common
        ).item(),
        "hd": lambda: compute_hausdorff_distance(y_pred, y, **common).item(),
        "nsd": lambda: compute_surface_dice(y_pred, y, [TOLERANCE_MM], **common).item(),
    }


def medlens_calls(pred: np.ndarray, ref: np.ndarray, spacing) -> dict[str, Callable[[], float]]:
    from medlens.metrics.surface import (
        average_symmetric_surface_distance,
        hausdorff_distance,
        hausdorff_distance_95,
        normalized_surface_dice,
        surface_metrics,
    )

    return {
        "hd95": lambda: hausdorff_distance_95(pred, ref, spacing),
        "assd": lambda: average_symmetric_surface_distance(pred, ref, spacing),
        "hd": lambda: hausdorff_distance(pred, ref, spacing),
        "nsd": lambda: normalized_surface_dice(pred, ref, spacing, tolerance_mm=TOLERANCE_MM),
        "all_four": lambda: surface_metrics(pred, ref, spacing, tolerance_mm=TOLERANCE_MM),
    }


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: first-call imports and caches are not what a user pays per case
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def memory_child(args: argparse.Namespace) -> None:
    """Peak RSS increase (MiB) of one HD95 call, in this fresh process.

    Linux lets a process reset its peak RSS (``VmHWM``) by writing 5 to
    ``/proc/self/clear_refs``; the peak during the call minus the RSS before it is the memory
    the call needed. Where that is not allowed, the increase of ``ru_maxrss`` is used, which
    reads 0 when the call needs less than the imports' transient peak.
    """
    import torch

    torch.set_num_threads(1)
    data = np.load(args.memory_child[1])
    pred, ref, spacing = data["pred"], data["ref"], tuple(data["spacing"])
    calls = (monai_calls if args.memory_child[0] == "monai" else medlens_calls)(pred, ref, spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            before, method = _status_kib("VmRSS"), "VmHWM after reset"
        except OSError:
            before, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
        calls["hd95"]()
        if method == "ru_maxrss":
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        else:
            after = _status_kib("VmHWM")
    print(json.dumps({"peak_rss_increase_mb": (after - before) / 1024.0, "method": method}))


def peak_memory(method: str, pred: np.ndarray, ref: np.ndarray, spacing, folder: Path) -> float:
    path = folder / "masks.npz"
    np.savez(path, pred=pred, ref=ref, spacing=np.array(spacing))
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", method, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_increase_mb"]


def relative_difference(ours: float, theirs: float) -> float:
    if ours == theirs:
        return 0.0
    return abs(ours - theirs) / max(abs(theirs), 1e-12)


def run_case(name: str, n: int, repeats: int, folder: Path) -> dict:
    kind, spacing = CASES[name]
    pred, ref = make_masks(kind, n, spacing)
    ours, theirs = medlens_calls(pred, ref, spacing), monai_calls(pred, ref, spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = {
            key: {"medlens": float(ours[key]()), "monai": float(theirs[key]())}
            for key in ("hd", "hd95", "assd", "nsd")
        }
        seconds = {
            "medlens_hd95": median_seconds(ours["hd95"], repeats),
            "monai_hd95": median_seconds(theirs["hd95"], repeats),
            "medlens_assd": median_seconds(ours["assd"], repeats),
            "monai_assd": median_seconds(theirs["assd"], repeats),
            "medlens_all_four": median_seconds(ours["all_four"], repeats),
        }
    differences = {k: relative_difference(v["medlens"], v["monai"]) for k, v in values.items()}
    return {
        "case": name,
        "size": n,
        "spacing_mm": list(spacing),
        "pred_voxels": int(pred.sum()),
        "ref_voxels": int(ref.sum()),
        "values": values,
        "max_rel_diff": max(differences.values()),
        "seconds": seconds,
        "hd95_speedup": seconds["monai_hd95"] / seconds["medlens_hd95"],
        "assd_speedup": seconds["monai_assd"] / seconds["medlens_assd"],
        "both_speedup": (seconds["monai_hd95"] + seconds["monai_assd"])
        / seconds["medlens_all_four"],
        "peak_rss_increase_mb": {
            "medlens_hd95": peak_memory("medlens", pred, ref, spacing, folder),
            "monai_hd95": peak_memory("monai", pred, ref, spacing, folder),
        },
    }


def print_row(row: dict) -> None:
    s, mem = row["seconds"], row["peak_rss_increase_mb"]
    print(
        f"{row['size']:>4}^3 {row['case']:<19} HD95 {row['values']['hd95']['medlens']:7.3f} mm  "
        f"medlens {s['medlens_hd95'] * 1e3:8.1f} ms  MONAI {s['monai_hd95'] * 1e3:8.1f} ms  "
        f"x{row['hd95_speedup']:5.1f} | ASSD x{row['assd_speedup']:5.1f} | "
        f"mem {mem['medlens_hd95']:6.1f} vs {mem['monai_hd95']:6.1f} MiB | "
        f"rel diff {row['max_rel_diff']:.1e}",
        flush=True,
    )


def summarize(rows: list[dict]) -> dict:
    """Per size: the median HD95 speed-up, the smallest and its case; the largest relative
    difference from MONAI; the largest peak RSS increase of a medlens HD95 call."""
    summary: dict = {}
    for n in sorted({row["size"] for row in rows}):
        at = [row for row in rows if row["size"] == n]
        slowest = min(at, key=lambda row: row["hd95_speedup"])
        summary[f"hd95_speedup_vs_monai_{n}"] = statistics.median(r["hd95_speedup"] for r in at)
        summary[f"hd95_speedup_vs_monai_{n}_min"] = slowest["hd95_speedup"]
        summary[f"hd95_speedup_vs_monai_{n}_min_case"] = slowest["case"]
    summary["max_rel_diff_vs_monai"] = max(row["max_rel_diff"] for row in rows)
    summary["max_peak_rss_increase_mib_medlens"] = max(
        row["peak_rss_increase_mb"]["medlens_hd95"] for row in rows
    )
    summary["max_peak_rss_increase_mib_monai"] = max(
        row["peak_rss_increase_mb"]["monai_hd95"] for row in rows
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="64^3 only (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per call")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    import torch

    from medlens.io_utils import write_json_atomic

    torch.set_num_threads(1)
    started = time.perf_counter()
    sizes = [64] if args.quick else [128, 256]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            repeats = args.repeats or (5 if n <= 128 else 3)
            for name in CASES:
                rows.append(run_case(name, n, repeats, Path(folder)))
                print_row(rows[-1])
    summary = summarize(rows)
    wall = time.perf_counter() - started
    result = {
        "benchmark": "surface_metrics",
        "machine": machine_info(),
        "threads": 1,
        "memory": "peak RSS during one HD95 call minus RSS before it, fresh process per call",
        "mode": "quick" if args.quick else "full",
        "wall_seconds": wall,
        "definitions": "hd95_speedup = MONAI compute_hausdorff_distance(percentile=95) time / "
        "medlens hausdorff_distance_95 time, each the median of its repeats; the summary gives "
        "the median over the cases of each size, and the smallest with its case",
        "cases": rows,
        "summary": summary,
    }
    name = "surface_metrics_quick.json" if args.quick else "surface_metrics.json"
    path = write_json_atomic(HERE / "results" / name, result)
    print(json.dumps(summary, indent=2))
    print(f"wrote {path} in {wall:.0f} s on {result['machine']['cpu']}")
    if summary["max_rel_diff_vs_monai"] > REL_TOLERANCE:
        sys.exit(
            f"values differ from MONAI: max relative difference {summary['max_rel_diff_vs_monai']:.2e} > {REL_TOLERANCE}"
        )


if __name__ == "__main__":
    main()
