"""Registration benchmark: medlens against ANTsPy SyN and SimpleITK B-spline, same pairs,
same run.

(a) MNI152 T1 (nilearn's 2 mm template, offline) with a known answer: each pair is the
    template (fixed) and the template deformed by a seeded synthetic transform (moving): an
    affine part (rotations up to +-10 degrees, translations up to +-10 mm, scales within
    +-10%, about the image centre) and a smooth cubic B-spline displacement (control points
    every 40 mm, largest displacement drawn in [4, 8] mm). 200 landmarks drawn in the moving
    brain (template > 0.3) and their exact images under the synthetic transform give the
    TRE; the grey-matter map (> 0.5) warped with it gives the moving labels, propagated back
    by each tool (nearest neighbour) and scored by Dice against the template's own.
(b) Real inter-subject pairs shipped offline: antspyx's example brain slices ('r16', 'r64')
    are NOT in its wheel (it downloads them), so (b) uses AdrenalMNIST3D (64^3 adrenal
    gland masks of different patients, from ../shared/data: Dice of the propagated mask)
    and PneumoniaMNIST (chest X-rays of different patients, 28 x 28: intensity correlation
    before and after, medlens only).
(c) The peers run on the same pairs in this process: ANTsPy ``registration(type_of_transform
    ="SyN")`` (its defaults: affine then SyN, reg_iterations (40, 20, 0)) and SimpleITK
    (moments initialiser, affine then B-spline with a 40 mm control grid, Mattes MI, three
    levels), both with 2 threads like medlens.

Every tool is scored the same way: its transform is sampled on the fixed grid as a map of
moving coordinates (each tool resamples three coordinate images), the TRE interpolates that
map at the fixed landmarks, and the folded voxels are those where the map's Jacobian
determinant is <= 0, counted inside the head (template > 0.1).

    python benchmarks/registration.py                      # 20 pairs -> results/registration.json
    python benchmarks/registration.py --quick --pairs 2    # smoke run -> results/registration_quick.json

``--quick`` runs the same medlens defaults but cuts the peers' iterations (ANTs (20, 10, 0),
SimpleITK 30 + 20 iterations) and (b) to 2 pairs: its peer figures are not comparable.
Seeds: pair k of (a) uses seed 1000 + k (development used seeds 101-110); (b) takes the first
pairs of each test split in order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402

THREADS = 2
SPACING_MM = 2.0
CONTROL_SPACING_MM = 40.0
N_LANDMARKS = 200
BENCHMARK_SEED = 1000

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(THREADS))


# -- the synthetic ground truth ----------------------------------------------------------------
def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class SyntheticDeformation:
    """phi(x) = L (x - c) + c + t + b(x), world mm (index * 2 mm), drawn from ``seed``.

    The moving image is F(phi(x)): its point x shows what the fixed image shows at phi(x).
    """

    def __init__(self, shape: tuple[int, ...], seed: int) -> None:
        from scipy import ndimage

        rng = np.random.default_rng(seed)
        self.shape = shape
        self.centre = (np.asarray(shape) - 1) / 2 * SPACING_MM
        self.angles_deg = rng.uniform(-10, 10, 3)
        self.scales = rng.uniform(0.9, 1.1, 3)
        self.translation = rng.uniform(-10, 10, 3)
        self.linear = rotation_matrix(np.deg2rad(self.angles_deg)) @ np.diag(self.scales)
        n_control = [int(np.ceil(n * SPACING_MM / CONTROL_SPACING_MM)) + 1 for n in shape]
        control = rng.standard_normal((3, *n_control))
        field = np.stack(
            [
                ndimage.zoom(c, [n / m for n, m in zip(shape, c.shape, strict=True)], order=3)
                for c in control
            ]
        )[(slice(None), *(slice(0, n) for n in shape))]
        self.max_bspline_mm = float(rng.uniform(4, 8))
        field *= self.max_bspline_mm / np.sqrt((field**2).sum(0)).max()
        self.field = field.astype(np.float32)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        voxels = points / SPACING_MM
        b = np.stack(
            [ndimage.map_coordinates(c, voxels.T, order=1, mode="nearest") for c in self.field], 1
        )
        return (points - self.centre) @ self.linear.T + self.centre + self.translation + b

    def describe(self) -> dict[str, Any]:
        return {
            "rotation_deg": self.angles_deg.tolist(),
            "scale": self.scales.tolist(),
            "translation_mm": self.translation.tolist(),
            "bspline_max_mm": self.max_bspline_mm,
        }


def grid_points(shape: tuple[int, ...]) -> np.ndarray:
    axes = [np.arange(n, dtype=np.float64) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape)) * SPACING_MM


def mni_pair(t1: np.ndarray, grey: np.ndarray, seed: int) -> dict[str, Any]:
    from scipy import ndimage

    phi = SyntheticDeformation(t1.shape, seed)
    source = phi(grid_points(t1.shape)) / SPACING_MM
    moving = ndimage.map_coordinates(t1, source.T, order=3, mode="constant").reshape(t1.shape)
    moving_grey = ndimage.map_coordinates(grey, source.T, order=1).reshape(t1.shape) > 0.5
    rng = np.random.default_rng(seed + 1)
    brain = np.argwhere(moving > 0.3)
    moving_points = brain[rng.choice(len(brain), N_LANDMARKS, replace=False)] * SPACING_MM
    return {
        "moving": np.clip(moving, 0, None).astype(np.float32),
        "moving_labels": moving_grey.astype(np.uint8),
        "moving_points": moving_points.astype(np.float64),
        "fixed_points": phi(moving_points.astype(np.float64)),
        "truth": phi.describe(),
    }


# -- scoring, the same for every tool ---------------------------------------------------------
def coordinate_map_scores(
    coords: np.ndarray, pair: dict[str, Any], head: np.ndarray
) -> dict[str, float]:
    """TRE (mm) and folded voxels (%) from a tool's map of moving coordinates (3, *shape)
    sampled on the fixed grid."""
    from scipy import ndimage

    voxels = pair["fixed_points"] / SPACING_MM
    mapped = np.stack([ndimage.map_coordinates(c, voxels.T, order=1) for c in coords], 1)
    tre = np.linalg.norm(mapped - pair["moving_points"], axis=1)
    grads = [np.gradient(c, SPACING_MM) for c in coords]
    jac = np.stack([np.stack(g, -1) for g in grads], -2)
    det = np.linalg.det(jac)
    return {
        "tre_median_mm": float(np.median(tre)),
        "tre_mean_mm": float(tre.mean()),
        "tre_p90_mm": float(np.percentile(tre, 90)),
        "folded_pct": float(100 * np.count_nonzero(det[head] <= 0) / max(head.sum(), 1)),
    }


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else float("nan")


# -- the three tools: (fixed, moving, moving_labels) -> coords, warped labels, seconds --------
Tool = Callable[[np.ndarray, np.ndarray, np.ndarray, bool], tuple[np.ndarray, np.ndarray, float]]


def run_medlens(fixed, moving, labels, quick) -> tuple[np.ndarray, np.ndarray, float]:
    from medlens.data.image import Image
    from medlens.registration import register_images
    from medlens.registration.warp import map_points, warp_array

    affine = np.diag([SPACING_MM] * fixed.ndim + [1.0]) if fixed.ndim == 3 else None
    spacing = (SPACING_MM,) * fixed.ndim if fixed.ndim == 3 else (1.0,) * fixed.ndim
    f = Image(fixed[None].astype(np.float32), spacing, affine, "fixed")
    m = Image(moving[None].astype(np.float32), spacing, affine, "moving")
    t0 = time.perf_counter()
    result = register_images(f, m, seed=0)
    seconds = time.perf_counter() - t0
    coords = None
    if fixed.ndim == 3:
        points = grid_points(fixed.shape) if affine is not None else None
        coords = np.moveaxis(map_points(result.chain, points).reshape(*fixed.shape, 3), -1, 0)
    warped = warp_array(result.chain, labels[None], nearest=True)[0]
    return coords, warped, seconds


def _ants_image(array: np.ndarray):
    import ants

    return ants.from_numpy(array.astype(np.float32), spacing=(SPACING_MM,) * array.ndim)


def run_ants(fixed, moving, labels, quick) -> tuple[np.ndarray, np.ndarray, float]:
    import ants

    f, m = _ants_image(fixed), _ants_image(moving)
    t0 = time.perf_counter()
    reg = ants.registration(
        f,
        m,
        type_of_transform="SyN",
        reg_iterations=(20, 10, 0) if quick else (40, 20, 0),
        random_seed=BENCHMARK_SEED,
    )
    seconds = time.perf_counter() - t0
    tx = reg["fwdtransforms"]
    warped = ants.apply_transforms(f, _ants_image(labels), tx, interpolator="nearestNeighbor")
    coords = np.stack(
        [
            ants.apply_transforms(f, _ants_image(c), tx, interpolator="linear").numpy()
            for c in moving_coordinates(moving.shape)
        ]
    )
    return coords, warped.numpy(), seconds


def _sitk_image(array: np.ndarray):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array.astype(np.float32).T))
    image.SetSpacing((SPACING_MM,) * array.ndim)
    return image


def _sitk_array(image) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).T


def run_sitk(fixed, moving, labels, quick) -> tuple[np.ndarray, np.ndarray, float]:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(THREADS)
    f, m = _sitk_image(fixed), _sitk_image(moving)
    t0 = time.perf_counter()

    def method(iterations: int) -> sitk.ImageRegistrationMethod:
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(0.05, seed=BENCHMARK_SEED)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetShrinkFactorsPerLevel([4, 2, 1])
        reg.SetSmoothingSigmasPerLevel([2, 1, 0])
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        return reg

    init = sitk.CenteredTransformInitializer(
        f, m, sitk.AffineTransform(fixed.ndim), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    affine_reg = method(30 if quick else 100)
    affine_reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 30 if quick else 100)
    affine_reg.SetOptimizerScalesFromPhysicalShift()
    affine_reg.SetInitialTransform(init, inPlace=False)
    affine = affine_reg.Execute(f, m)
    mesh = [max(1, int(round(n * SPACING_MM / CONTROL_SPACING_MM))) for n in fixed.shape]
    bspline = sitk.BSplineTransformInitializer(f, mesh)
    spline_reg = method(20 if quick else 50)
    spline_reg.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5, numberOfIterations=20 if quick else 50
    )
    spline_reg.SetMovingInitialTransform(affine)
    spline_reg.SetInitialTransform(bspline, inPlace=True)
    spline_reg.Execute(f, m)
    composite = sitk.CompositeTransform([affine, bspline])
    seconds = time.perf_counter() - t0
    warped = sitk.Resample(_sitk_image(labels), f, composite, sitk.sitkNearestNeighbor, 0.0)
    coords = np.stack(
        [
            _sitk_array(sitk.Resample(_sitk_image(c), f, composite, sitk.sitkLinear, 0.0))
            for c in moving_coordinates(moving.shape)
        ]
    )
    return coords, _sitk_array(warped), seconds


def moving_coordinates(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Three images whose voxels hold their own world coordinates (mm): resampled by a tool,
    they give its map of moving coordinates on the fixed grid."""
    return [(np.indices(shape)[axis] * SPACING_MM).astype(np.float32) for axis in range(len(shape))]


TOOLS: dict[str, Tool] = {"medlens": run_medlens, "ants": run_ants, "sitk": run_sitk}


# -- the benchmark --------------------------------------------------------------------------
def mni_benchmark(n_pairs: int, quick: bool, tools: list[str]) -> list[dict[str, Any]]:
    from nilearn import datasets

    t1 = np.asarray(datasets.load_mni152_template(resolution=2).dataobj, dtype=np.float32)
    grey = np.asarray(datasets.load_mni152_gm_template(resolution=2).dataobj, dtype=np.float32)
    fixed_labels = (grey > 0.5).astype(np.uint8)
    head = t1 > 0.1
    rows = []
    for k in range(n_pairs):
        seed = BENCHMARK_SEED + k
        pair = mni_pair(t1, grey, seed)
        before = np.linalg.norm(pair["fixed_points"] - pair["moving_points"], axis=1)
        row: dict[str, Any] = {
            "seed": seed,
            "truth": pair["truth"],
            "tre_before_median_mm": float(np.median(before)),
            "gm_dice_before": dice(pair["moving_labels"], fixed_labels),
        }
        for name in tools:
            coords, warped, seconds = TOOLS[name](t1, pair["moving"], pair["moving_labels"], quick)
            row[name] = {
                **coordinate_map_scores(coords, pair, head),
                "gm_dice": dice(warped, fixed_labels),
                "seconds": seconds,
            }
            print(
                f"  pair {k} {name}: TRE {row['tre_before_median_mm']:.2f} -> "
                f"{row[name]['tre_median_mm']:.2f} mm, GM Dice {row[name]['gm_dice']:.3f}, "
                f"folded {row[name]['folded_pct']:.4f}%, {seconds:.1f} s",
                flush=True,
            )
        rows.append(row)
    return rows


def adrenal_benchmark(n_pairs: int, quick: bool, tools: list[str]) -> list[dict[str, Any]]:
    """Inter-patient adrenal masks (64^3): Dice of the propagated mask."""
    path = SHARED_DATA / "adrenalmnist3d" / "adrenalmnist3d_64.npz"
    images = np.load(path)["test_images"].astype(np.float32) / 255.0
    rows = []
    for k in range(n_pairs):
        fixed, moving = images[2 * k], images[2 * k + 1]
        row: dict[str, Any] = {"pair": [2 * k, 2 * k + 1], "dice_before": dice(moving, fixed)}
        for name in tools:
            _, warped, seconds = TOOLS[name](fixed, moving, (moving > 0.5).astype(np.uint8), quick)
            row[name] = {"dice": dice(warped, fixed), "seconds": seconds}
        rows.append(row)
    return rows


def pneumonia_benchmark(n_pairs: int) -> list[dict[str, Any]]:
    """Inter-patient chest X-rays (28 x 28): intensity correlation before and after."""
    from medlens.data.image import Image
    from medlens.registration import register_images
    from medlens.registration.evaluation import correlation
    from medlens.registration.warp import warp_array

    images = np.load(SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz")["test_images"]
    rows = []
    for k in range(n_pairs):
        fixed, moving = (images[2 * k + i].astype(np.float32) / 255.0 for i in range(2))
        f, m = (Image(a[None], (1.0, 1.0), None, "x") for a in (fixed, moving))
        t0 = time.perf_counter()
        chain = register_images(f, m, seed=0).chain
        seconds = time.perf_counter() - t0
        warped = warp_array(chain, moving[None])[0]
        inner = (slice(3, -3), slice(3, -3))  # the edges, where the warp pads with zeros
        rows.append(
            {
                "pair": [2 * k, 2 * k + 1],
                "ncc_before": correlation(fixed[inner], moving[inner]),
                "ncc_after": correlation(fixed[inner], warped[inner]),
                "seconds": seconds,
            }
        )
    return rows


def median(rows: list[dict[str, Any]], tool: str, key: str) -> float | None:
    values = [r[tool][key] for r in rows if tool in r]
    return float(np.median(values)) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="MNI pairs (a)")
    parser.add_argument("--quick", action="store_true", help="smoke run (see the docstring)")
    parser.add_argument("--tools", default="medlens,ants,sitk")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    tools = [t for t in args.tools.split(",") if t]
    start = time.perf_counter()
    machine = machine_info()
    print(f"machine: {machine}", flush=True)
    print(f"(a) MNI152, {args.pairs} synthetic pairs", flush=True)
    mni = mni_benchmark(args.pairs, args.quick, tools)
    n_real = 2 if args.quick else 10
    print(f"(b) AdrenalMNIST3D, {n_real} inter-patient pairs", flush=True)
    adrenal = adrenal_benchmark(n_real, args.quick, tools)
    pneumonia = pneumonia_benchmark(n_real)
    summary = {
        "mni_tre_median_mm": median(mni, "medlens", "tre_median_mm"),
        "mni_tre_before_mm": float(np.median([r["tre_before_median_mm"] for r in mni])),
        "mni_gm_dice": median(mni, "medlens", "gm_dice"),
        "mni_gm_dice_before": float(np.median([r["gm_dice_before"] for r in mni])),
        "folded_pct": median(mni, "medlens", "folded_pct"),
        "folded_pct_max": max((r["medlens"]["folded_pct"] for r in mni), default=None),
        "seconds_per_pair": median(mni, "medlens", "seconds"),
        "ants_tre_median_mm": median(mni, "ants", "tre_median_mm"),
        "ants_gm_dice": median(mni, "ants", "gm_dice"),
        "ants_folded_pct": median(mni, "ants", "folded_pct"),
        "ants_seconds_per_pair": median(mni, "ants", "seconds"),
        "sitk_tre_median_mm": median(mni, "sitk", "tre_median_mm"),
        "sitk_gm_dice": median(mni, "sitk", "gm_dice"),
        "sitk_folded_pct": median(mni, "sitk", "folded_pct"),
        "sitk_seconds_per_pair": median(mni, "sitk", "seconds"),
        "adrenal_dice_before": float(np.median([r["dice_before"] for r in adrenal])),
        **{f"adrenal_{t}_dice": median(adrenal, t, "dice") for t in tools},
        "pneumonia_ncc_before": float(np.median([r["ncc_before"] for r in pneumonia])),
        "pneumonia_ncc_after": float(np.median([r["ncc_after"] for r in pneumonia])),
    }
    wall = time.perf_counter() - start
    document = {
        "benchmark": "registration",
        "machine": machine,
        "threads": THREADS,
        "mode": "quick" if args.quick else "full",
        "pairs": args.pairs,
        "wall_seconds": wall,
        "definitions": (
            "TRE: median over 200 landmarks per pair, then the median over pairs (mm); "
            "folded_pct: voxels of the head (template > 0.1) where the Jacobian determinant of "
            "the tool's map is <= 0; seconds: the registration call alone; GM Dice: the "
            "moving grey matter (> 0.5) propagated by nearest neighbour vs the template's"
        ),
        "targets": {
            "mni_tre_median_mm": "<= 1 (from >= 5 before)",
            "mni_gm_dice": ">= 0.90",
            "folded_pct": "< 0.1",
            "seconds_per_pair": "<= 60 on a 2-core CPU",
        },
        "summary": summary,
        "mni": mni,
        "adrenal": adrenal,
        "pneumonia": pneumonia,
    }
    name = "registration_quick.json" if args.quick else "registration.json"
    out = args.out or HERE / "results" / name
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wall time {wall:.0f} s -> {out}")


if __name__ == "__main__":
    main()
