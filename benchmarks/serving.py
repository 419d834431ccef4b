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

The engines themselves (``--parts model``): a ResNet-18 trained here on PneumoniaMNIST with the
demo's recipe (64 px, ``--model-minutes`` of training) is exported to ONNX and quantised to
int8 (``medlens export --quantize int8``: 128 seeded training images calibrate it). On the
whole test split, each of eager PyTorch, float ONNX and int8 ONNX gives its test AUC; on one
thread each, the median latency of a single image (batch 1, 200 repeats) and the throughput
of batches of 32 (images/s); and the file sizes. Summary keys: ``onnx_speedup`` (eager p50 /
float ONNX p50, batch 1: the serving case), ``onnx_int8_speedup_vs_fp32`` (throughput at batch
32, int8 / float), ``onnx_int8_size_ratio`` (float file / int8 file), ``onnx_int8_auc_drop``
(float ONNX AUC - int8 AUC). The service load test above keeps its torch/ONNX p50 ratio as
``onnx_speedup_service`` (a 28 px small_cnn, where HTTP and PNG decoding dominate) and adds
the int8 engine.

Writes benchmarks/results/serving.json (``--quick``: serving_quick.json, so a smoke run never
replaces the full figures).

    python benchmarks/serving.py                              # both parts
    python benchmarks/serving.py --parts model                # the engines only
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


def train_resnet18(out: Path, minutes: float) -> Path:
    """The demo's ResNet-18 recipe on PneumoniaMNIST (64 px), trained for ``minutes``."""
    import torch

    from medlens.commands.demo import demo_config
    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(2)
    config = demo_config(PNEUMONIA, out, minutes)
    config["evaluate"] = {"n_bootstrap": 0}
    return train_from_config(parse_config(config), progress=False)


def _test_split(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every PneumoniaMNIST test image preprocessed by the run, and the labels."""
    from medlens.data.image import Image
    from medlens.inference.loaded_run import load_run, prepare_input

    run = load_run(run_dir, device="cpu")
    with np.load(PNEUMONIA) as data:
        images, labels = data["test_images"], data["test_labels"].ravel()
    batch = [
        prepare_input(run, Image(array=im[None].astype(np.float32), spacing=(1.0, 1.0)))
        for im in images
    ]
    return np.stack(batch), labels


def _timings(call: Any, batch: np.ndarray, repeats: int) -> dict[str, float]:
    """Median latency of one image (ms) and throughput of batches of 32 (images/s)."""
    single = batch[:1]
    call(single)
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(single)
        latencies.append(time.perf_counter() - start)
    block = batch[:32]
    call(block)
    rounds = max(3, repeats // 20)
    start = time.perf_counter()
    for _ in range(rounds):
        call(block)
    return {
        "p50_ms_batch1": 1000 * statistics.median(latencies),
        "images_per_s_batch32": rounds * len(block) / (time.perf_counter() - start),
    }


def _metrics_count(url: str) -> float:
    """The requests ``GET /metrics`` says the service answered (all endpoints)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "medlens_requests_total"
    )


def model_part(run_dir: Path | None, minutes: float, repeats: int, tmp: Path) -> dict[str, Any]:
    """Eager PyTorch vs float ONNX vs int8 ONNX of one ResNet-18: AUC, speed, size."""
    import torch
    from sklearn.metrics import roc_auc_score

    from medlens.inference.loaded_run import load_run
    from medlens.inference.onnx import OUTPUT_NAME, export_onnx, onnx_session
    from medlens.inference.quantize import quantize_run

    run_dir = run_dir or train_resnet18(tmp / "resnet", minutes)
    fp32 = export_onnx(run_dir, out=tmp / "model.onnx")
    int8 = quantize_run(run_dir, fp32_path=fp32, out=tmp / "model.int8.onnx")
    batch, labels = _test_split(run_dir)
    torch.set_num_threads(1)
    model = load_run(run_dir, device="cpu").model.eval()

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    def session_call(path: Path) -> Any:
        session = onnx_session(path, threads=1)
        name = session.get_inputs()[0].name
        return lambda x: session.run([OUTPUT_NAME], {name: x})[0]

    engines = {"eager": eager, "onnx_fp32": session_call(fp32), "onnx_int8": session_call(int8)}
    rows: dict[str, dict[str, Any]] = {}
    for name, call in engines.items():
        logits = np.concatenate([call(batch[i : i + 256]) for i in range(0, len(batch), 256)])
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = exp[:, 1] / exp.sum(axis=1)
        rows[name] = {
            "test_auc": float(roc_auc_score(labels, probs)),
            **_timings(call, batch, repeats),
        }
        print(name, rows[name], flush=True)
    rows["onnx_fp32"]["file_mb"] = fp32.stat().st_size / 2**20
    rows["onnx_int8"]["file_mb"] = int8.stat().st_size / 2**20
    return {
        "model": "resnet18, demo recipe, PneumoniaMNIST 64 px"
        + ("" if run_dir is None else f" ({run_dir})"),
        "test_images": int(len(labels)),
        "engines": rows,
        "summary": {
            "onnx_speedup": rows["eager"]["p50_ms_batch1"] / rows["onnx_fp32"]["p50_ms_batch1"],
            "onnx_int8_speedup_vs_fp32": rows["onnx_int8"]["images_per_s_batch32"]
            / rows["onnx_fp32"]["images_per_s_batch32"],
            "onnx_int8_speedup_vs_fp32_batch1": rows["onnx_fp32"]["p50_ms_batch1"]
            / rows["onnx_int8"]["p50_ms_batch1"],
            "onnx_int8_size_ratio": rows["onnx_fp32"]["file_mb"] / rows["onnx_int8"]["file_mb"],
            "onnx_int8_auc_drop": rows["onnx_fp32"]["test_auc"] - rows["onnx_int8"]["test_auc"],
        },
    }


def _keep_other_parts(path: Path, result: dict[str, Any], parts: set[str]) -> dict[str, Any]:
    """A run of some parts keeps the other parts' figures already in ``path`` (each part's
    rows say when they were measured), so ``--parts model`` does not erase the service."""
    import json

    if not path.is_file():
        return result
    old = json.loads(path.read_text())
    measured = result["machine"]["date"]
    for key, part in (("engines", "service"), ("model", "model")):
        if part in parts:
            result[f"{key}_measured"] = measured
        elif old.get(key):
            result[key] = old[key]
            result[f"{key}_measured"] = old.get(f"{key}_measured", old["machine"]["date"])
            keep = SERVICE_KEYS if part == "service" else MODEL_KEYS
            result["summary"].update(
                {
                    k: v
                    for k, v in old.get("summary", {}).items()
                    if k in keep or k.startswith("p95")
                }
            )
    return result


SERVICE_KEYS = ("errors_5xx", "bad_requests_answered_4xx_fraction", "onnx_speedup_service")
MODEL_KEYS = (
    "onnx_speedup",
    "onnx_int8_speedup_vs_fp32",
    "onnx_int8_speedup_vs_fp32_batch1",
    "onnx_int8_size_ratio",
    "onnx_int8_auc_drop",
)


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
    parser.add_argument("--parts", default="service,model", help="service, model or both")
    parser.add_argument("--model-run", type=Path, help="a ResNet-18 run (default: train one)")
    parser.add_argument("--model-minutes", type=float, default=4.0)
    args = parser.parse_args()

    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    started = time.perf_counter()
    engines: dict[str, Any] = {}
    model: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="medlens-serving-bench-") as tmp:
        if "service" in parts:
            from medlens.inference.quantize import quantize_run

            run_dir = args.run or train_run(Path(tmp) / "runs", 0.05 if args.quick else 0.25)
            quantize_run(run_dir)  # the int8 engine serves the run's model.int8.onnx
            bodies = request_bodies(args.max_upload_mb)
            for engine in ("torch", "onnx", "onnx-int8"):
                log = Path(tmp) / f"{engine}.log"
                process, url = start_service(
                    run_dir, engine, args.server_threads, args.max_upload_mb, log
                )
                try:
                    engines[engine] = load_phase(url, bodies, args, args.seed)
                    engines[engine]["metrics_requests_counted"] = _metrics_count(url)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                print(engine, engines[engine], flush=True)
        if "model" in parts:
            model = model_part(
                args.model_run,
                1.0 if args.quick else args.model_minutes,
                20 if args.quick else 200,
                Path(tmp),
            )

    summary: dict[str, Any] = {}
    if engines:
        fractions = [e["bad_requests_answered_4xx_fraction"] for e in engines.values()]
        torch_p50, onnx_p50 = engines["torch"]["p50_ms"], engines["onnx"]["p50_ms"]
        summary.update(
            {
                "errors_5xx": sum(e["errors_5xx"] for e in engines.values()),
                "bad_requests_answered_4xx_fraction": (
                    min(f for f in fractions if f is not None)
                    if any(f is not None for f in fractions)
                    else None
                ),
                "onnx_speedup_service": (
                    round(torch_p50 / onnx_p50, 3) if torch_p50 and onnx_p50 else None
                ),
                f"p95_ms_28px_c{args.clients}": engines["torch"]["p95_ms"],
            }
        )
    if model:
        summary.update({k: round(v, 4) for k, v in model["summary"].items()})
    result = {
        "benchmark": "serving",
        "machine": machine_info(),
        "config": {
            "parts": sorted(parts),
            "run": str(args.run) if args.run else "small_cnn, 1 epoch, PneumoniaMNIST 28 px",
            "seconds_per_engine": args.seconds,
            "clients": args.clients,
            "bad_fraction": args.bad_fraction,
            "max_upload_mb": args.max_upload_mb,
            "server_threads": args.server_threads,
            "heatmap": args.heatmap,
            "quick": args.quick,
            "model_minutes": args.model_minutes,
        },
        "engines": engines,
        "model": model,
        "summary": summary,
        "wall_seconds": time.perf_counter() - started,
    }
    name = "serving_quick.json" if args.quick else "serving.json"
    result = _keep_other_parts(HERE / "results" / name, result, parts)
    out = write_json_atomic(HERE / "results" / name, result)
    print(f"wrote {out}")
    print(result["summary"])


if __name__ == "__main__":
    main()
