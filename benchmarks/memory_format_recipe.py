"""Epoch seconds of the PneumoniaMNIST recipe (configs/pneumoniamnist_resnet18.yaml, seed 0,
3 epochs, the whole loop: loading, augmentation, step, validation with flip TTA) with ResNet-18
in the default 2D layout and in channels-last, one after the other in the same process.

The registry's entry is swapped for each arm (a benchmark-only override), so that nothing but
the layout differs. Prints each arm's epoch seconds (history.csv), whether the saved kernels
were channels-last, the machine and the wall time.

    python benchmarks/memory_format_recipe.py default channels_last
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info  # noqa: E402
from classification import medlens_config  # noqa: E402

import medlens.models  # noqa: E402, F401  (registers the models)
from medlens.config import parse_config  # noqa: E402
from medlens.models.registry import MODELS  # noqa: E402
from medlens.train.deep.run import train_from_config  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    started = time.perf_counter()
    entry = MODELS.get("resnet18")
    arms = {
        "channels_last": entry,
        "default": dataclasses.replace(
            entry, channels_last=frozenset(p for p in entry.channels_last if p[0] != 2)
        ),
    }
    out: dict[str, object] = {"machine": machine_info()}
    for arm in sys.argv[1:] or ["default", "channels_last"]:
        with MODELS.replaced("resnet18", arms[arm]), tempfile.TemporaryDirectory() as tmp:
            cfg = medlens_config("pneumonia", 0, 15.0, Path(tmp))
            cfg["train"]["max_minutes"] = None
            cfg["train"]["epochs"] = 3
            cfg["evaluate"] = {"n_bootstrap": 0}
            run = train_from_config(parse_config(cfg), progress=False)
            lines = (run / "history.csv").read_text().splitlines()[1:]
            seconds = [float(line.split(",")[-1]) for line in lines]
            state = torch.load(run / "model.pt", weights_only=False)["model"]
            kernel = next(v for v in state.values() if v.dim() == 4 and v.shape[1] > 1)
            last = kernel.is_contiguous(memory_format=torch.channels_last)
            out[arm] = {
                "epoch_seconds": seconds,
                "saved_channels_last": last and not kernel.is_contiguous(),
            }
            print(arm, json.dumps(out[arm]), flush=True)
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
