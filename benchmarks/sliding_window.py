"""Sliding-window memory benchmark: today's slab stitching vs the MONAI stitching medlens used
before (commit e91e6a0), same network, same volume, same run.

A small 3D U-Net (channels 8, 16, 32, 64) is trained here for ``--steps`` steps on 48^3
patches of seeded synthetic volumes (smooth bright blobs in noise, the label: blob or not),
so that its probabilities are confident as a real segmenter's are. It then segments one
``--size``^3 volume of the same kind with 64^3 patches at overlap 0.5, two ways, each in a
fresh child process (so that one path's allocations cannot hide the other's):

- ``before``: ``monai.inferers.sliding_window_inference`` on the whole volume (float32 sums
  and weight map of the whole volume), the probabilities then averaged and converted as the
  old ``sliding_window_predict`` and ``predict_mask`` did, then post-processed as then;
- ``after``: ``medlens.inference.sliding_window.sliding_window_labels`` (slab-by-slab float32
  sums one patch deep, of the foreground only; a uint8 label map), then post-processed, as
  ``predict_mask`` does when preprocessing keeps the image's grid.

Recorded per path: the peak RSS increase of the call (peak during the call minus the RSS
before it, in MiB: the memory the call needed), the process's peak RSS, and the seconds per
case. The masks of the two paths are compared (Dice of the foreground; the fraction of voxels
that agree). Summary keys: ``sw_peak_rss_ratio`` (after / before, of the increase; target
<= 0.5), ``sw_dice_identity`` (target >= 0.999), ``sw_seconds_before``, ``sw_seconds_after``.

Writes benchmarks/results/sliding_window.json (``--quick``: 96^3, sliding_window_quick.json).

    python benchmarks/sliding_window.py            # 256^3
    python benchmarks/sliding_window.py --quick    # 96^3, about a minute
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info  # noqa: E402

from medlens.io_utils import write_json_atomic  # noqa: E402

ROI = (64, 64, 64)
OVERLAP = 0.5
CHANNELS = [8, 16, 32, 64]


def synthetic_volume(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image (1, n, n, n) float32, label (n, n, n) bool)``: smooth blobs in noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n), dtype=np.float32), n / 24)
    field /= field.std()
    label = field > 0.8
    image = label.astype(np.float32) + 0.6 * rng.standard_normal((n, n, n), dtype=np.float32)
    return image[None], label


def train_model(steps: int, seed: int = 0) -> torch.nn.Module:
    from medlens.models import create_model

    torch.manual_seed(seed)
    model = create_model("unet", in_channels=1, num_classes=2, spatial_dims=3, channels=CHANNELS)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    image, label = synthetic_volume(96, seed + 100)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        corners = rng.integers(0, 96 - 48, size=(2, 3))
        x = np.stack([image[:, a : a + 48, b : b + 48, c : c + 48] for a, b, c in corners])
        y = np.stack([label[a : a + 48, b : b + 48, c : c + 48] for a, b, c in corners])
        loss = torch.nn.functional.cross_entropy(
            model(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64))
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def predict_before(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The previous medlens path (commit e91e6a0), step by step: MONAI's stitching, the float32
    probabilities divided by the flip count (a copy), then the post-processing of that time
    (NaN check, threshold to an int64 label map, the classes present, cast to uint8)."""
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        probs = sliding_window_inference(
            torch.from_numpy(image)[None],
            ROI,
            4,
            lambda x: torch.softmax(model(x), dim=1),
            overlap=OVERLAP,
            mode="gaussian",
        )
        probs = (probs / 1).float()
    array = probs[0].cpu().numpy()
    if np.isnan(array).any() or array.min() < 0 or array.max() > 1:
        raise ValueError("not probabilities")
    labels = (array[-1] >= 0.5).astype(np.int64)
    [int(c) for c in np.unique(labels) if c != 0]  # the classes present, looked up every time
    return labels.astype(np.min_scalar_type(max(int(labels.max(initial=0)), 1)))


def predict_after(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Today's ``predict_mask`` path on the image's own grid: slab-by-slab labels
    (``sliding_window_labels``), then post-processing."""
    from medlens.inference.postprocess import postprocess
    from medlens.inference.sliding_window import sliding_window_labels

    labels = sliding_window_labels(model, torch.from_numpy(image), ROI, overlap=OVERLAP)
    return postprocess(labels[0].cpu().numpy(), threshold=0.5)


def child(path: str, which: str, out: str) -> None:
    """Run one path in this fresh process and print its memory and time."""
    torch.set_num_threads(2)
    data = np.load(path)
    model = torch.load(Path(path).with_suffix(".pt"), weights_only=False)
    image = data["image"]
    predict = predict_before if which == "before" else predict_after
    predict(model, image[:, :64, :64, :64].copy())  # warm-up: lazy imports, allocator
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        method = "VmHWM after reset"
    except OSError:
        method = "ru_maxrss (not reset)"
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    labels = predict(model, image)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    np.save(out, labels)
    print(
        json.dumps(
            {
                "peak_rss_increase_mib": (peak - before) / 1024.0,
                "peak_rss_mib": peak / 1024.0,
                "rss_before_mib": before / 1024.0,
                "seconds": seconds,
                "method": method,
            }
        )
    )


def run_path(which: str, folder: Path) -> tuple[dict, np.ndarray]:
    out = folder / f"{which}.npy"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(folder / "case.npz"), which, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    size, steps = (96, 60) if args.quick else (args.size, args.steps)
    started = time.perf_counter()
    torch.set_num_threads(2)
    model = train_model(steps)
    image, label = synthetic_volume(size, seed=7)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.savez(folder / "case.npz", image=image)
        torch.save(model, folder / "case.pt")
        masks = {}
        for which in ("before", "after"):
            rows[which], masks[which] = run_path(which, folder)
            print(which, json.dumps(rows[which]), flush=True)
    a, b = masks["before"] > 0, masks["after"] > 0
    dice = 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)
    truth = (
        2.0 * np.count_nonzero(b & label) / max(np.count_nonzero(b) + np.count_nonzero(label), 1)
    )
    summary = {
        "sw_peak_rss_ratio": rows["after"]["peak_rss_increase_mib"]
        / rows["before"]["peak_rss_increase_mib"],
        "sw_dice_identity": dice,
        "sw_voxel_agreement": float(np.mean(masks["before"] == masks["after"])),
        "sw_seconds_before": rows["before"]["seconds"],
        "sw_seconds_after": rows["after"]["seconds"],
        "sw_dice_vs_truth_after": truth,
    }
    result = {
        "benchmark": "sliding_window",
        "machine": machine_info(),
        "mode": "quick" if args.quick else "full",
        "volume": f"{size}^3 voxels, 1 channel, 2 classes",
        "patch": list(ROI),
        "overlap": OVERLAP,
        "network": f"unet channels {CHANNELS}, {steps} training steps on synthetic blobs",
        "definitions": "peak_rss_increase_mib = peak RSS during one case (VmHWM reset before "
        "it) minus the RSS before it, in a fresh process; the ratio divides after by before",
        "paths": rows,
        "summary": summary,
        "wall_seconds": time.perf_counter() - started,
    }
    name = "sliding_window_quick.json" if args.quick else "sliding_window.json"
    write_json_atomic(HERE / "results" / name, result)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
