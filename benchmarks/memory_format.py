"""Memory-layout benchmark: the seconds per training step and per forward pass of medlens's
networks in the default (NCHW, NCDHW) layout and in channels-last, on this machine's CPU.

``medlens.models.memory_format`` puts a network in channels-last on the CPU, for training
(``train/deep/run.py``, ``train/segmentation/run.py``) or inference (``load_run``), where the
model registry's ``channels_last`` names that (dims, use) pair. Those pairs are this script's
figures: every registered classifier and segmenter, in each dims it supports, takes
channels-last for a use where that measured at least 5% faster (time ratio <= 0.95;
``tests/models/test_memory_format.py`` checks the registry against the committed results).
The script also checks that the layout changes no number beyond rounding: for every network
the two layouts' logits (a training step's loss) must agree to 1e-3 of their largest magnitude;
the differences are recorded, and the script exits non-zero, after writing its results, if
any is larger.

Each case times at least ``--reps`` repetitions after one warm-up, more for fast cases (until
``--seconds`` are spent, at most 50), and records the fastest (the least disturbed by anything
else on the machine), in seconds; inputs are seeded random tensors of
the shapes the recipes use. A training step is forward, cross-entropy, backward and AdamW.

Summary keys: ``<case>_default_s``, ``<case>_channels_last_s`` and ``<case>_ratio``
(channels-last / default; below 1 is faster).

Writes benchmarks/results/memory_format.json.

    python benchmarks/memory_format.py            # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info  # noqa: E402

from medlens.models import create_model  # noqa: E402
from medlens.models.registry import MODELS  # noqa: E402

#: Input shapes (N, C, *spatial) by spatial dims, task and mode: a recipe's batch for
#: classification, patches for segmentation (in 2D, DRIVE's 16 patches of 96 px).
SHAPES = {
    (3, "classification", "train"): (8, 1, 64, 64, 64),
    (3, "classification", "forward"): (16, 1, 64, 64, 64),
    (3, "segmentation", "train"): (2, 1, 64, 64, 64),
    (3, "segmentation", "forward"): (1, 1, 96, 96, 96),
    (2, "classification", "train"): (32, 1, 64, 64),
    (2, "classification", "forward"): (64, 1, 64, 64),
    (2, "segmentation", "train"): (16, 1, 96, 96),
    (2, "segmentation", "forward"): (16, 1, 96, 96),
}
ADRENAL_RECIPE = {"spatial_dims": 3, "channels": [8, 16, 32, 64]}
PNEUMONIA_RECIPE = {"spatial_dims": 2, "cifar_stem": False}

Case = tuple[str, str, str, dict[str, Any], tuple[int, ...]]


def cases() -> list[Case]:
    """A training step and a forward pass of every registered classifier and segmenter, in
    each spatial dims it supports, and of the AdrenalMNIST3D and PneumoniaMNIST recipes'
    networks at their batch sizes."""
    out: list[Case] = [
        ("adrenal_recipe_train", "train", "small_cnn", ADRENAL_RECIPE, (32, 1, 64, 64, 64)),
        ("adrenal_recipe_forward", "forward", "small_cnn", ADRENAL_RECIPE, (64, 1, 64, 64, 64)),
        ("pneumonia_recipe_train", "train", "resnet18", PNEUMONIA_RECIPE, (128, 1, 64, 64)),
    ]
    for dims in (3, 2):
        for name in MODELS.names():
            entry = MODELS.get(name)
            if dims not in entry.spatial_dims or entry.task not in (
                "classification",
                "segmentation",
            ):
                continue
            for mode in ("train", "forward"):
                shape = SHAPES[(dims, entry.task, mode)]
                out.append((f"{name}_{dims}d_{mode}", mode, name, {"spatial_dims": dims}, shape))
    return out


#: The most the two layouts' outputs may differ, relative to the output's largest magnitude
#: (at least 1): float32 rounding through some 100 layers (Inception-v3 in training mode)
#: reaches 1e-4.
TOLERANCE = 1e-3


def _layout(dims: int) -> torch.memory_format:
    return torch.channels_last_3d if dims == 5 else torch.channels_last


def _targets(logits: torch.Tensor) -> torch.Tensor:
    """Seeded labels of the logits' shape less the class axis (per case or per voxel)."""
    g = torch.Generator().manual_seed(1)
    shape = (logits.shape[0], *logits.shape[2:])
    return torch.randint(0, logits.shape[1], shape, generator=g)


def time_case(
    mode: str,
    name: str,
    kwargs: dict[str, Any],
    shape: tuple[int, ...],
    fmt: torch.memory_format,
    reps: int,
    seconds: float,
) -> tuple[float, torch.Tensor]:
    """The fastest of at least ``reps`` timed calls (more, up to 50, until ``seconds`` are
    spent) after one warm-up, in seconds, and the first call's output (logits for
    ``forward``, the loss for ``train``)."""
    torch.manual_seed(0)
    model: nn.Module = create_model(name, **kwargs)
    model.to(memory_format=fmt)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    if mode == "forward":
        model.eval()

        def call() -> torch.Tensor:
            with torch.no_grad():
                return model(x)

    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        y: torch.Tensor | None = None

        def call() -> torch.Tensor:
            nonlocal y
            logits = model(x)
            if y is None:
                y = _targets(logits)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()

    first = call()
    times: list[float] = []
    while len(times) < reps or (sum(times) < seconds and len(times) < 50):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "memory_format.json")
    args = parser.parse_args()
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    summary: dict[str, float] = {}
    disagree: list[str] = []
    for case, mode, name, kwargs, shape in cases():
        default_s, default_out = time_case(
            mode, name, kwargs, shape, torch.contiguous_format, args.reps, args.seconds
        )
        last_s, last_out = time_case(
            mode, name, kwargs, shape, _layout(len(shape)), args.reps, args.seconds
        )
        diff = float((default_out.float() - last_out.float()).abs().max())
        scale = max(1.0, float(default_out.float().abs().max()))
        if diff > TOLERANCE * scale:
            disagree.append(f"{case}: the layouts disagree by {diff:.2e}")
        rows[case] = {
            "mode": mode,
            "model": name,
            "arguments": kwargs,
            "input_shape": list(shape),
            "default_s": round(default_s, 4),
            "channels_last_s": round(last_s, 4),
            "ratio": round(last_s / default_s, 3),
            "max_abs_difference": diff,
            "output_scale": scale,
        }
        summary.update(
            {f"{case}_{k}": rows[case][k] for k in ("default_s", "channels_last_s", "ratio")}
        )
        print(case, json.dumps(rows[case]), flush=True)
    result = {
        "benchmark": "memory_format",
        "machine": machine_info(),
        "reps": args.reps,
        "seconds": args.seconds,
        "cases": rows,
        "summary": summary,
        "layouts_disagree": disagree,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wall {result['wall_seconds']} s on {result['machine']['cpu']}")
    if disagree:
        raise SystemExit("\n".join(disagree))


if __name__ == "__main__":
    main()
