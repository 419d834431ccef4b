"""Serving benchmark: the inference service under concurrent clients, PyTorch vs ONNX engine.

A small_cnn run on 28 px PneumoniaMNIST (trained here for one epoch unless ``--run`` names
one) is served by ``medlens.serve.app.serve`` in a child process (uvicorn, no auth, loopback),
first with the PyTorch engine, then with the ONNX engine (onnxruntime; the network exported
at start-up). For ``--seconds`` per engine, ``--clients`` threads (httpx, one connection
each) send ``POST /v1/predict`` requests: real PneumoniaMNIST test images as PNG, and a share
(``--bad-fraction``) of bad requests, in equal parts a wrong type (CSV text, expect 415), a
body over the size limit (expect 413) and a truncated PNG (expect 422). Grad-CAM is off
(``heatmap=false``) unless ``--heatmap``: it runs in PyTorch for both engines and would hide
the engines' difference.

Recorded per engine: requests/s, p50/p95/max latency of the good requests (ms, client side,
request sent to response read), the count of 5xx answers (must be 0), the fraction of bad
requests answered with a 4xx, and client-side connection errors. Summary keys:
``errors_5xx`` (both engines), ``bad_requests_answered_4xx_fraction`` (the lower of the two),
``onnx_speedup`` (torch p50 / onnx p50), ``p95_ms_28px_c8`` (the PyTorch engine's p95 with
8 clients, the default engine), plus machine information.

Writes benchmarks/results/serving.json (``--quick``: serving_quick.json, so a smoke run never
replaces the full figures).

    python benchmarks/serving.py                              # 30 s per engine, 8 clients
    python benchmarks/serving.py --quick --seconds 3          # smoke run
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402

from medlens.io_utils import write_json_atomic  # noqa: E402

REPO = HERE.parent
PNEUMONIA = SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"
BAD_KINDS = ("wrong_type", "too_big", "corrupt")
EXPECTED_STATUS = {"good": 200, "wrong_type": 415, "too_big": 413, "corrupt": 422}

SERVER = """
import sys, torch
torch.set_num_threads(int(sys.argv[4]))
from medlens.serve.app import serve
serve([sys.argv[1]], host="127.0.0.1", port=int(sys.argv[2]), engine=sys.argv[3],
      max_upload_mb=float(sys.argv[5]), timeout_s=30.0)
"""


def train_run(out: Path, fraction: float) -> Path:
    """small_cnn, one epoch on ``fraction`` of PneumoniaMNIST's training split (28 px)."""
    import torch

    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(1)
    config = {
        "name": "pneumonia28",
        "seed": 0,
        "output_dir": str(out),
        "data": {"format": "medmnist", "path": str(PNEUMONIA), "train_fraction_used": fraction},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 64, "lr": 3e-3, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 0},
    }
    return train_from_config(parse_config(config), progress=False)


def request_bodies(max_upload_mb: float, n_images: int = 64) -> dict[str, list[bytes]]:
    """PNG files of real test images, and the three kinds of bad upload."""
    import PIL.Image

    with np.load(PNEUMONIA) as data:
        images = np.array(data["test_images"][:n_images])
    good = []
    for image in images:
        buffer = io.BytesIO()
        PIL.Image.fromarray(image).save(buffer, format="PNG")
        good.append(buffer.getvalue())
    too_big = good[0] + bytes(int(max_upload_mb * 2**20) + 1024)
    return {
        "good": good,
        "wrong_type": [b"patient,age\nanonymous,50\n" * 4],
        "too_big": [too_big],
        "corrupt": [png[: len(png) // 2] for png in good[:8]],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(
    run_dir: Path, engine: str, threads: int, max_upload_mb: float, log: Path
) -> tuple[subprocess.Popen, str]:
    """The service in a child process; returns once ``/readyz`` answers."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MEDLENS_TOKENS"}
    env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-c", SERVER, str(run_dir), str(port), engine, str(threads)]
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [*command, str(max_upload_mb)], stdout=handle, stderr=handle, env=env
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {engine} service exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the {engine} service did not become ready in 180 s; see {log}")


def client_loop(
    url: str,
    bodies: dict[str, list[bytes]],
    deadline: float,
    bad_fraction: float,
    heatmap: bool,
    seed: int,
    records: list[tuple[str, int, float]],
) -> None:
    """Send requests until ``deadline``; append ``(kind, status, seconds)`` (status 0: the
    connection failed)."""
    import httpx

    rng = np.random.default_rng(seed)
    query = f"{url}/v1/predict?heatmap={'true' if heatmap else 'false'}"
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < deadline:
            kind = str(rng.choice(BAD_KINDS)) if rng.random() < bad_fraction else "good"
            choices = bodies[kind]
            body = choices[int(rng.integers(len(choices)))]
            start = time.perf_counter()
            try:
                response = client.post(query, files={"file": ("image.png", body, "image/png")})
                status = response.status_code
            except httpx.TransportError:
                status = 0
            records.append((kind, status, time.perf_counter() - start))


def load_phase(
    url: str, bodies: dict[str, list[bytes]], args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    """``args.clients`` threads for ``args.seconds``; the figures of one engine."""
    for _ in range(5):  # warm-up: first-call allocations, lazy imports in the service
        client_loop(url, bodies, time.monotonic() + 0.5, 0.0, args.heatmap, seed, [])
    records: list[tuple[str, int, float]] = []
    start = time.monotonic()
    deadline = start + args.seconds
    threads = [
        threading.Thread(
            target=client_loop,
            args=(url, bodies, deadline, args.bad_fraction, args.heatmap, seed + k, records),
        )
        for k in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    good_ms = sorted(1000 * s for kind, status, s in records if kind == "good" and status == 200)
    bad = [(kind, status) for kind, status, _ in records if kind != "good"]
    by_kind = {
        kind: {
            "n": sum(1 for k, _ in bad if k == kind),
            "expected_status": EXPECTED_STATUS[kind],
            "got_expected": sum(1 for k, s in bad if k == kind and s == EXPECTED_STATUS[kind]),
        }
        for kind in BAD_KINDS
    }
    return {
        "requests": len(records),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(records) / elapsed, 1),
        "good_requests": len(good_ms),
        "good_not_200": sum(1 for kind, status, _ in records if kind == "good" and status != 200),
        "p50_ms": round(statistics.median(good_ms), 2) if good_ms else None,
        "p95_ms": round(float(np.percentile(good_ms, 95)), 2) if good_ms else None,
        "max_ms": round(good_ms[-1], 2) if good_ms else None,
        "errors_5xx": sum(1 for _, status, _ in records if status >= 500),
        "connection_errors": sum(1 for _, status, _ in records if status == 0),
        "bad_requests": len(bad),
        "bad_requests_answered_4xx_fraction": (
            round(sum(1 for _, s in bad if 400 <= s < 500) / len(bad), 4) if bad else None
        ),
        "bad_requests_by_kind": by_kind,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a 28 px classification run (default: train one)")
    parser.add_argument("--seconds", type=float, default=30.0, help="load time per engine")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bad-fraction", type=float, default=0.2)
    parser.add_argument("--max-upload-mb", type=float, default=1.0)
    parser.add_argument("--server-threads", type=int, default=1, help="torch/onnxruntime threads")
    parser.add_argument("--heatmap", action="store_true", help="ask for the Grad-CAM overlay too")
    parser.add_argument(
        "--quick", action="store_true", help="train on 5%%; write serving_quick.json"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medlens-serving-bench-") as tmp:
        run_dir = args.run or train_run(Path(tmp) / "runs", 0.05 if args.quick else 0.25)
        bodies = request_bodies(args.max_upload_mb)
        engines: dict[str, Any] = {}
        for engine in ("torch", "onnx"):
            log = Path(tmp) / f"{engine}.log"
            process, url = start_service(
                run_dir, engine, args.server_threads, args.max_upload_mb, log
            )
            try:
                engines[engine] = load_phase(url, bodies, args, args.seed)
            finally:
                process.terminate()
                process.wait(timeout=30)
            print(engine, engines[engine], flush=True)

    fractions = [e["bad_requests_answered_4xx_fraction"] for e in engines.values()]
    torch_p50, onnx_p50 = engines["torch"]["p50_ms"], engines["onnx"]["p50_ms"]
    result = {
        "benchmark": "serving",
        "machine": machine_info(),
        "config": {
            "run": str(args.run) if args.run else "small_cnn, 1 epoch, PneumoniaMNIST 28 px",
            "seconds_per_engine": args.seconds,
            "clients": args.clients,
            "bad_fraction": args.bad_fraction,
            "max_upload_mb": args.max_upload_mb,
            "server_threads": args.server_threads,
            "heatmap": args.heatmap,
            "quick": args.quick,
        },
        "engines": engines,
        "summary": {
            "errors_5xx": sum(e["errors_5xx"] for e in engines.values()),
            "bad_requests_answered_4xx_fraction": (
                min(f for f in fractions if f is not None)
                if any(f is not None for f in fractions)
                else None
            ),
            "onnx_speedup": round(torch_p50 / onnx_p50, 3) if torch_p50 and onnx_p50 else None,
            f"p95_ms_28px_c{args.clients}": engines["torch"]["p95_ms"],
        },
    }
    name = "serving_quick.json" if args.quick else "serving.json"
    out = write_json_atomic(HERE / "results" / name, result)
    print(f"wrote {out}")
    print(result["summary"])


if __name__ == "__main__":
    main()
