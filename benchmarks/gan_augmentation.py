"""GAN augmentation benchmark: do class-conditional DCGAN samples help a classifier that has
only 10% of the PneumoniaMNIST training split?

For each seed:
  1. the stratified 10% of the training split (the draw of ``data.train_fraction_used: 0.1``
     with that seed) trains a class-conditional DCGAN for ``--gan-minutes``;
  2. as many synthetic images as there are real ones are sampled, class-balanced;
  3. the same classifier (the configs/pneumoniamnist_resnet18.yaml recipe, or a cheaper
     ``--classifier small_cnn`` config) is trained for ``--classifier-minutes`` on the real
     10% alone (without) and on the real 10% + the synthetic images (with); both are tested
     on the untouched official test split.
Reports the test AUC mean ± sd of each arm and delta_auc = with − without (per seed, then
mean), whatever its sign. Writes benchmarks/results/gan.json (summary key
gan_delta_auc_mean). Defaults fit ~40 minutes on a 2-core CPU.

    python benchmarks/gan_augmentation.py                       # full protocol, 3 seeds
    python benchmarks/gan_augmentation.py --seeds 0 --gan-minutes 0.1 \\
        --classifier-minutes 0.1 --classifier small_cnn --out /tmp/gan_smoke.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info, peak_rss_mb  # noqa: E402

from medlens.io_utils import write_json_atomic  # noqa: E402

REPO = HERE.parent
REAL_NPZ = SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"
RESNET_RECIPE = REPO / "configs" / "pneumoniamnist_resnet18.yaml"
FRACTION = 0.1


def classifier_config(
    kind: str, data: Path, fraction: float, seed: int, minutes: float, out: Path, name: str
) -> dict[str, Any]:
    """The classification run of one arm: the repo's ResNet-18 recipe, or a small CNN."""
    import yaml

    if kind == "resnet18":
        cfg = yaml.safe_load(RESNET_RECIPE.read_text())
    else:
        cfg = {
            "preprocess": [{"name": "fixed_scale", "divisor": 255}],
            "augment": [
                {"name": "random_flip", "axes": [-1], "p": 0.5},
                {"name": "random_affine", "degrees": 15, "scale": 0.15, "translation": 3, "p": 0.8},
                {"name": "random_brightness_contrast", "p": 0.5},
            ],
            "model": {"name": "small_cnn"},
            "train": {
                "epochs": 200,
                "batch_size": 64,
                "lr": 3e-3,
                "threshold": "youden",
                "early_stopping_patience": None,
            },  # fmt: skip
        }
    cfg.update(name=name, seed=seed, output_dir=str(out))
    cfg["data"] = {"format": "medmnist", "path": str(data), "train_fraction_used": fraction}
    cfg["train"]["max_minutes"] = minutes
    cfg["evaluate"] = {"n_bootstrap": 200}
    return cfg


def train_classifier(cfg: dict[str, Any]) -> dict[str, Any]:
    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    run_dir = train_and_report(parse_config(cfg), overwrite=True, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    auc = metrics["splits"]["test"]["metrics"]["auc"]
    return {
        "test_auc": auc["value"],
        "test_auc_ci": [auc["ci_low"], auc["ci_high"]],
        "val_auc": metrics["splits"]["val"]["metrics"]["auc"]["value"],
        "epochs": metrics["epochs_run"],
        "train_minutes": metrics["train_seconds"] / 60,
    }


def one_seed(seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from medlens.data.medmnist import load_medmnist_npz
    from medlens.train.gan.config import GanConfig
    from medlens.train.gan.mixing import augment_with_synthetic
    from medlens.train.gan.sampling import sample_gan
    from medlens.train.gan.training import train_gan

    t0 = time.perf_counter()
    gan_cfg = GanConfig(
        name=f"gan-s{seed}",
        output_dir=work,
        seed=seed,
        data_path=args.data,
        train_fraction_used=FRACTION,
        epochs=100_000,  # the time budget ends training
        batch_size=args.gan_batch_size,
        max_minutes=args.gan_minutes,
        sample_every=50,
        feature_max_seconds=30.0,
    )
    gan_run = train_gan(gan_cfg, overwrite=True, progress=False)
    quality = json.loads((gan_run / "quality.json").read_text())
    n_real = quality["n_train_images"]
    synthetic = sample_gan(
        gan_run, n_real, None, work / f"synthetic-s{seed}.npz", seed=seed,
        real_npz=args.data, overwrite=True,
    )  # fmt: skip
    mixed = augment_with_synthetic(
        args.data, synthetic, work / f"mixed-s{seed}.npz", FRACTION, seed
    )
    n_mixed = len(load_medmnist_npz(mixed).labels["train"])
    arms = {
        "without": classifier_config(
            args.classifier, args.data, FRACTION, seed, args.classifier_minutes, work,
            f"without-s{seed}",
        ),
        "with": classifier_config(
            args.classifier, mixed, 1.0, seed, args.classifier_minutes, work, f"with-s{seed}"
        ),
    }  # fmt: skip
    result: dict[str, Any] = {
        "seed": seed,
        "n_real_train": n_real,
        "n_synthetic": n_mixed - n_real,
        "gan": {
            k: quality[k]
            for k in (
                "fid",
                "fid_reference_val",
                "c2st_auc",
                "c2st_auc_reference_val",
                "epochs_run",
                "train_seconds",
            )
        },  # fmt: skip
    }
    for arm, cfg in arms.items():
        result[arm] = train_classifier(cfg)
    result["delta_auc"] = result["with"]["test_auc"] - result["without"]["test_auc"]
    result["wall_minutes"] = (time.perf_counter() - t0) / 60
    print(f"[{time.strftime('%H:%M:%S')}] seed {seed}: {json.dumps(result)}", flush=True)
    return result


def _mean_sd(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-minutes", type=float, default=5.0, help="GAN budget per seed")
    parser.add_argument("--gan-batch-size", type=int, default=32)
    parser.add_argument(
        "--classifier-minutes", type=float, default=3.0, help="budget of each classifier run"
    )
    parser.add_argument("--classifier", choices=["resnet18", "small_cnn"], default="resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REAL_NPZ)
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gan.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "protocol": {
            "data": str(args.data),
            "train_fraction_used": FRACTION,
            "synthetic": "as many as the real training images, class-balanced",
            "classifier": args.classifier,
            "gan_minutes": args.gan_minutes,
            "gan_batch_size": args.gan_batch_size,
            "classifier_minutes": args.classifier_minutes,
            "seeds": args.seeds,
        },
    }
    with tempfile.TemporaryDirectory(prefix="medlens-gan-bench-") as tmp:
        work = args.workdir or Path(tmp)
        runs = []
        for seed in args.seeds:
            runs.append(one_seed(seed, args, work))
            report["runs"] = runs  # what is measured so far survives a later failure
            write_json_atomic(args.out.with_suffix(".partial.json"), report)
    report["without_synthetic"] = {"test_auc": _mean_sd([r["without"]["test_auc"] for r in runs])}
    report["with_synthetic"] = {"test_auc": _mean_sd([r["with"]["test_auc"] for r in runs])}
    report["delta_auc"] = _mean_sd([r["delta_auc"] for r in runs])
    report["gan_fid"] = _mean_sd([r["gan"]["fid"] for r in runs])
    report["gan_c2st_auc"] = _mean_sd([r["gan"]["c2st_auc"] for r in runs])
    report["wall_minutes"] = (time.perf_counter() - t_start) / 60
    report["peak_rss_mb"] = peak_rss_mb()
    report["summary"] = {
        "gan_delta_auc_mean": report["delta_auc"]["mean"],
        "gan_auc_without_mean": report["without_synthetic"]["test_auc"]["mean"],
        "gan_auc_with_mean": report["with_synthetic"]["test_auc"]["mean"],
    }
    report["gan_delta_auc_mean"] = report["delta_auc"]["mean"]
    write_json_atomic(args.out, report)
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    w, a = report["without_synthetic"]["test_auc"], report["with_synthetic"]["test_auc"]
    d = report["delta_auc"]
    print(f"test AUC without synthetic: {w['mean']:.3f} ± {w['sd']:.3f}")
    print(f"test AUC with synthetic:    {a['mean']:.3f} ± {a['sd']:.3f}")
    print(f"delta AUC (with - without): {d['mean']:+.3f} ± {d['sd']:.3f}  {d['values']}")
    print(f"wall time {report['wall_minutes']:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
