"""Transfer learning measured offline: 10% of the PneumoniaMNIST training labels, a ResNet-18
trained from scratch vs initialised from a medlens checkpoint that was pre-trained
self-supervised (rotation prediction, Gidaris et al. 2018) on the training images without
their labels. Mean ± sd over seeds; each run in the same budget."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA  # noqa: E402

NPZ = SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"
FRACTION = 0.1
PRETEXT_MINUTES = 5.0
FINETUNE_EPOCHS = 30


def pretrain_rotation(
    out: Path, minutes: float = PRETEXT_MINUTES, seed: int = 0, threads: int = 2
) -> dict:
    """Self-supervised pre-training: predict which of 0/90/180/270 degrees an image was
    rotated by. Uses the training images only, never a label. Saves a medlens checkpoint."""
    import torch
    from torch import nn

    from medlens.models import create_model
    from medlens.run_folder.checkpoint import save_checkpoint

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    raw = torch.from_numpy(np.load(NPZ)["train_images"].astype(np.float32) / 255.0).unsqueeze(1)
    # The same 64 px input and standard stem as the fine-tuning recipe, so every weight transfers.
    images = torch.nn.functional.interpolate(
        raw, size=(64, 64), mode="bilinear", align_corners=False
    )
    model = create_model(
        "resnet18", in_channels=1, num_classes=4, spatial_dims=2, input_size=64, cifar_stem=False
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    t0, steps, correct, seen = time.perf_counter(), 0, 0, 0
    model.train()
    while time.perf_counter() - t0 < minutes * 60:
        idx = torch.randint(len(images), (128,), generator=generator)
        k = torch.randint(4, (128,), generator=generator)
        x = torch.stack(
            [torch.rot90(images[i], int(r), dims=(1, 2)) for i, r in zip(idx, k, strict=True)]
        )
        x = torch.where(torch.rand(128, 1, 1, 1, generator=generator) < 0.5, x, x.flip(-1))
        logits = model(x)
        loss = loss_fn(logits, k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if steps > 20:
            correct += int((logits.argmax(1) == k).sum())
            seen += 128
    save_checkpoint({"model": model.state_dict(), "model_config": model.config}, out)
    return {
        "steps": steps,
        "pretext_train_accuracy": correct / max(seen, 1),
        "minutes": (time.perf_counter() - t0) / 60,
    }


def _config(seed: int, out: Path, init: Path | None, epochs: int = FINETUNE_EPOCHS) -> dict:
    model: dict = {"name": "resnet18", "cifar_stem": False}
    if init is not None:
        model.update(init=str(init), strategy="discriminative", backbone_lr_scale=0.3)
    return {
        "name": f"tl-{'pre' if init else 'scratch'}-s{seed}",
        "seed": seed,
        "output_dir": str(out),
        "data": {"format": "medmnist", "path": str(NPZ), "train_fraction_used": FRACTION},
        "preprocess": [
            {"name": "fixed_scale", "divisor": 255},
            {"name": "resize", "size": [64, 64]},
        ],
        "augment": [{"name": "random_flip", "axes": [-1], "p": 0.5}],
        "model": model,
        "train": {
            "epochs": epochs,
            "batch_size": 64,
            "lr": 2e-3,
            "early_stopping_patience": None,
        },
        "evaluate": {"n_bootstrap": 200},
    }


def _child(config_json: str, threads: int) -> None:
    import torch

    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    torch.set_num_threads(threads)
    run = train_and_report(parse_config(json.loads(config_json)), overwrite=True, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    print(
        json.dumps(
            {
                "test_auc": metrics["metrics"]["auc"]["value"],
                "test_acc_at_val_threshold": metrics["metrics"]["accuracy"]["value"],
            }
        )
    )


def _spawn(config: dict, threads: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(config), str(threads)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[{time.strftime('%H:%M:%S')}] {config['name']} -> {result}", flush=True)
    return result


def _stats(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def run_transfer_benchmark(
    work: Path,
    seeds: list[int],
    threads: int = 2,
    pretext_minutes: float = PRETEXT_MINUTES,
    epochs: int = FINETUNE_EPOCHS,
) -> dict:
    ckpt = work / "rotation_pretext.pt"
    print(
        f"[{time.strftime('%H:%M:%S')}] self-supervised pre-training ({pretext_minutes} min)",
        flush=True,
    )
    pretext = pretrain_rotation(ckpt, minutes=pretext_minutes, threads=threads)
    scratch = [_spawn(_config(s, work, None, epochs), threads) for s in seeds]
    pre = [_spawn(_config(s, work, ckpt, epochs), threads) for s in seeds]
    return {
        "description": (
            f"ResNet-18, {int(FRACTION * 100)}% of the training split (stratified, per seed), "
            f"{epochs} epochs at 64 px; pre-trained: rotation prediction on all training images "
            f"without labels for {pretext_minutes} min, then fine-tuned with the backbone at 0.3x lr."
        ),
        "pretext": pretext,
        "scratch": {
            "runs": scratch,
            "test_auc": _stats(scratch, "test_auc"),
            "test_acc_at_val_threshold": _stats(scratch, "test_acc_at_val_threshold"),
        },
        "pretrained": {
            "runs": pre,
            "test_auc": _stats(pre, "test_auc"),
            "test_acc_at_val_threshold": _stats(pre, "test_acc_at_val_threshold"),
        },
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        print(json.dumps(run_transfer_benchmark(Path(sys.argv[1]), [0, 1, 2]), indent=2))
