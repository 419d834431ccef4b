"""Scale benchmark: streaming inference over large DICOM archives, the preprocessing cache,
and DDP training with 1 vs 2 processes.

(a) Streaming (``medlens.streaming.stream_predict``): 1,000, 10,000 and 50,000 DICOM files,
    written as copies of real images — pydicom-data's readable 2D single-frame grey images
    (uncompressed, deflated, big-endian, RLE, JPEG, JPEG-LS, JPEG 2000) and the three real CT
    slices of ../shared/data/dicom_ct_liver_seg/ct — each with new SOP Instance and Series
    UIDs, in series folders of 500 files; one pool of copies serves every size (size N reads
    the first N/500 folders). A tiny small_cnn run (1 epoch on PneumoniaMNIST, preprocessing
    percentile clip + resize to --image-size px) predicts them with the local engine (1 and 2
    decoding workers) and the Ray engine (2 actors), each in a fresh child process whose
    whole process tree's RSS (and PSS, which counts shared pages once) is sampled every
    0.1 s. By default the local engine with 2 workers runs all three sizes (the memory
    check) and the other two run 1,000 and 10,000 files (``--engine-sizes`` changes this).
    Target: peak RSS at the largest size within 10% of that at the smallest.
(b) Cache (``medlens.data.cache.CachedDataset``): the time of one training epoch's data
    loading on PneumoniaMNIST (resize to 64 px + flip/affine/brightness augmentation, as
    configs/pneumoniamnist_resnet18.yaml) and AdrenalMNIST3D (28^3, an intensity scale and
    flips, as configs/adrenalmnist3d_small_cnn.yaml was when measured) without a cache and with the memory and the disk
    cache (steady-state epoch, after the cache is built), and the time of a small_cnn
    forward/backward pass over the same epoch, which no cache changes.
(c) DDP: ``torchrun --nproc_per_node 1`` vs ``2`` (gloo, one thread per process) training a
    small_cnn on the whole PneumoniaMNIST training split, resized to 64 px, for a fixed number
    of epochs (``--ddp-epochs``, ``--ddp-size``).

    python benchmarks/scale.py                 # the full run (about 30 minutes on 2 cores)
    python benchmarks/scale.py --quick         # tiny sizes, a smoke test (a few minutes)
    python benchmarks/scale.py --parts streaming --engine-sizes "local1:1000,50000;ray2:1000"

Writes benchmarks/results/scale.json (``--quick``: scale_quick.json). Needs ~65 KB to 600 KB
of disk per DICOM copy (``--max-template-kb`` bounds it; the plan is printed and checked
against the free space first); the copies are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402

FILES_PER_SERIES = 500
ENGINES = {
    "local1": ("local", 1),
    "local2": ("local", 2),
    "ray1": ("ray", 1),
    "ray2": ("ray", 2),
}
# The memory check (1,000 vs 50,000 files) runs on the fastest local set-up; the others are
# compared at 1,000 and 10,000 files, which keeps the whole benchmark near 30 minutes.
PARTS = ("streaming", "cache", "ddp")
DEFAULT_PLAN = "local2:1000,10000,50000;local1:1000,10000;ray2:1000,10000;ray1:1000,10000"
QUICK_PLAN = "local2:20,60;local1:20,60;ray2:20,60;ray1:20,60"


def parse_plan(text: str) -> dict[str, list[int]]:
    """``"local2:1000,50000;ray2:1000"`` -> ``{"local2": [1000, 50000], "ray2": [1000]}``."""
    plan = {}
    for item in filter(None, text.split(";")):
        name, _, sizes = item.partition(":")
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
        plan[name] = sorted(int(v) for v in sizes.split(",") if v)
        if not plan[name] or min(plan[name]) < 1:
            raise ValueError(f"{name} needs positive file counts")
    return plan


# ----------------------------------------------------------------------------- memory


class TreeMemorySampler:
    """Peak RSS and PSS (MiB) of a process and all its descendants, sampled in a thread.

    Uses psutil when installed, else /proc. RSS counts a page shared by several processes
    (forked workers, Ray's object store) once per process; PSS divides it among them.
    """

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            pids = _tree_pids(self.pid)
            self.peak_rss_mb = max(self.peak_rss_mb, sum(_rss_kb(p) for p in pids) / 1024)
            if tick % 5 == 0:  # PSS reads smaps: slower, so twice a second
                self.peak_pss_mb = max(self.peak_pss_mb, sum(_pss_kb(p) for p in pids) / 1024)
            tick += 1
            self._stop.wait(self.interval_s)


def _tree_pids(root: int) -> list[int]:
    try:
        import psutil

        proc = psutil.Process(root)
        return [root] + [c.pid for c in proc.children(recursive=True)]
    except ImportError:
        pass
    except Exception:  # the process just ended
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _proc_field_kb(path: str, field: str) -> float:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(field):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _rss_kb(pid: int) -> float:
    return _proc_field_kb(f"/proc/{pid}/status", "VmRSS:")


def _pss_kb(pid: int) -> float:
    return _proc_field_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


# ----------------------------------------------------------------------------- (a) streaming


def _template_files(max_kb: int) -> list[Path]:
    """Real 2D single-frame grey DICOM files that medlens reads, at most ``max_kb`` each.

    pydicom's own test files and pydicom-data's, found on disk (``get_testdata_files`` would
    also try to download the ones missing, and this machine has no internet).
    """
    from pydicom.data.data_manager import DATA_ROOT, external_data_sources

    from medlens.data.dicom import read_dicom_file

    candidates = sorted((Path(DATA_ROOT) / "test_files").glob("*.dcm"))
    for source in external_data_sources().values():
        candidates += [Path(p) for p in source.get_paths("*.dcm", 0)]
    candidates += sorted((SHARED_DATA / "dicom_ct_liver_seg" / "ct").glob("*.dcm"))
    keep = []
    for path in sorted(candidates, key=lambda p: p.name):
        if path.stat().st_size > max_kb * 1024:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = read_dicom_file(path)
        except Exception:
            continue
        if image.array.ndim == 3 and image.array.shape[0] == 1 and min(image.array.shape[1:]) >= 16:
            keep.append(path)
    return keep


def usable_templates(templates: list[Path], prepare: Any, probe: Path) -> list[Path]:
    """The templates whose re-written copy medlens reads back and preprocesses."""
    import pydicom

    keep = []
    for path in templates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pydicom.dcmread(path).save_as(probe)
            except Exception:
                continue
            if prepare(str(probe))[2] is None:
                keep.append(path)
    probe.unlink(missing_ok=True)
    return keep


def write_series(job: tuple[Path, int, int, list[Path]]) -> None:
    """Series folder ``folder`` with ``count`` copies, template ``(first + k) % len``, new
    SOP Instance UIDs and one new Series Instance UID."""
    import pydicom
    from pydicom.uid import generate_uid

    folder, first, count, templates = job
    warnings.simplefilter("ignore")
    datasets = [pydicom.dcmread(p) for p in templates]
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    for k in range(count):
        ds = datasets[(first + k) % len(datasets)]
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"IM{k:05d}.dcm")


def write_dicom_pool(folder: Path, n: int, templates: list[Path], processes: int) -> float:
    """``n`` copies of ``templates`` (in turn) in series folders of FILES_PER_SERIES files.

    Returns:
        Seconds taken.
    """
    from multiprocessing import Pool

    start = time.perf_counter()
    jobs = [
        (folder / f"series_{s:04d}", first, min(FILES_PER_SERIES, n - first), templates)
        for s, first in enumerate(range(0, n, FILES_PER_SERIES))
    ]
    with Pool(processes) as pool:
        pool.map(write_series, jobs, chunksize=1)
    return time.perf_counter() - start


def train_tiny_run(work: Path, image_size: int, fraction: float) -> Path:
    """A small_cnn run folder whose preprocessing fits any grey image to ``image_size`` px."""
    import torch

    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(2)
    config = {
        "name": "scale-tiny",
        "seed": 0,
        "output_dir": str(work / "runs"),
        "data": {
            "format": "medmnist",
            "path": str(SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"),
            "train_fraction_used": fraction,
        },
        "preprocess": [
            {"name": "percentile_clip", "lower": 0.5, "upper": 99.5},
            {"name": "resize", "size": [image_size, image_size]},
        ],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0, "amp": False},
        "evaluate": {"n_bootstrap": 0},
    }
    return train_from_config(parse_config(config), progress=False, overwrite=True)


def stream_child(spec: dict) -> None:
    """In a fresh process: one stream_predict call; prints its summary as JSON."""
    from medlens.streaming import stream_predict

    start = time.perf_counter()
    summary = stream_predict(
        spec["run"],
        spec["inputs"],
        spec["out"],
        engine=spec["engine"],
        workers=spec["workers"],
        batch_size=spec["batch_size"],
        resume=False,
        progress=False,
    )
    print(
        json.dumps(
            {
                "predicted": summary.predicted,
                "errors": summary.errors,
                "stream_seconds": summary.seconds,
                "files_per_s": summary.files_per_s,
                "process_seconds": time.perf_counter() - start,
            }
        )
    )


def measure_stream(spec: dict, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with TreeMemorySampler(proc.pid) as sampler:
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"streaming child failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(
        wall_seconds=round(time.perf_counter() - start, 2),
        peak_rss_mb=round(sampler.peak_rss_mb, 1),
        peak_pss_mb=round(sampler.peak_pss_mb, 1),
    )
    return result


def _seconds_per_file(pool: Path, prepare: Any, n: int = 60) -> float:
    """CPU seconds to read and preprocess one of the copies (in this process)."""
    files = sorted(pool.glob("series_0000/*.dcm"))[:n]
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            prepare(str(path))
    return (time.process_time() - start) / max(len(files), 1)


def streaming_benchmark(args: argparse.Namespace, work: Path) -> dict:
    from medlens.inference.loaded_run import load_run
    from medlens.streaming.batch import CasePreparer

    plan: dict[str, list[int]] = args.engine_sizes
    largest = max(max(sizes) for sizes in plan.values())
    run_dir = train_tiny_run(work, args.image_size, args.train_fraction)
    run = load_run(run_dir, "cpu")
    prepare = CasePreparer(run.preprocess, run.input_shape)
    pool = work / "dicom"
    pool.mkdir(parents=True)
    templates = usable_templates(_template_files(args.max_template_kb), prepare, pool / "probe.dcm")
    if not templates:
        raise SystemExit("no usable DICOM template (is pydicom-data installed?)")
    mean_kb = sum(p.stat().st_size for p in templates) / len(templates) / 1024
    need_gb = mean_kb * largest / 1024**2
    free_gb = shutil.disk_usage(work).free / 1024**3
    print(
        f"(a) {len(templates)} DICOM templates, ~{mean_kb:.0f} KB each: {largest} copies "
        f"need ~{need_gb:.1f} GB in {work} ({free_gb:.0f} GB free)"
    )
    if need_gb > 0.5 * free_gb:
        raise SystemExit("not enough free disk: lower --max-template-kb or the sizes, or --workdir")
    write_seconds = write_dicom_pool(pool, largest, templates, processes=os.cpu_count() or 1)
    per_file = _seconds_per_file(pool, prepare)
    cores = os.cpu_count() or 1
    projected = sum(
        n * per_file / min(ENGINES[name][1], cores) for name, sizes in plan.items() for n in sizes
    )
    print(
        f"    wrote {largest} files in {write_seconds:.0f} s; reading + preprocessing costs "
        f"{1000 * per_file:.1f} ms of CPU per file: streaming will take ~{projected / 60:.0f} min"
    )
    results: dict[str, dict[str, dict]] = {}
    for name, sizes in plan.items():
        engine, workers = ENGINES[name]
        results[name] = {}
        for size in sorted(sizes):
            folders = sorted(pool.glob("series_*"))[
                : (size + FILES_PER_SERIES - 1) // FILES_PER_SERIES
            ]
            spec = {
                "run": str(run_dir),
                "inputs": [str(f) for f in folders],
                "out": str(work / f"{name}_{size}.parquet"),
                "engine": engine,
                "workers": workers,
                "batch_size": args.batch_size,
            }
            r = measure_stream(spec, args.threads)
            results[name][str(size)] = r
            print(
                f"    {name:7s} {size:6d} files: {r['files_per_s']:7.1f} files/s, "
                f"peak RSS {r['peak_rss_mb']:7.1f} MiB (PSS {r['peak_pss_mb']:.1f}), "
                f"{r['errors']} errors"
            )

    def ratio(rows: dict, key: str) -> float:
        small, large = rows[min(rows, key=int)], rows[max(rows, key=int)]
        return round(large[key] / max(small[key], 1e-9), 3)

    return {
        "plan": {name: sorted(sizes) for name, sizes in plan.items()},
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "templates": [p.name for p in templates],
        "write_seconds": round(write_seconds, 1),
        "cpu_ms_per_file": round(1000 * per_file, 2),
        "engines": {n: {"engine": ENGINES[n][0], "workers": ENGINES[n][1]} for n in plan},
        "runs": results,
        "rss_ratio_largest_vs_smallest": {
            n: ratio(r, "peak_rss_mb") for n, r in results.items() if len(r) > 1
        },
        "pss_ratio_largest_vs_smallest": {
            n: ratio(r, "peak_pss_mb") for n, r in results.items() if len(r) > 1
        },
        "files_per_s_at_largest": {
            n: round(r[max(r, key=int)]["files_per_s"], 1) for n, r in results.items()
        },
        "largest_size": {n: max(map(int, r)) for n, r in results.items()},
    }


# ----------------------------------------------------------------------------- (b) cache


CACHE_DATASETS = {
    "pneumoniamnist": (
        "pneumoniamnist_subset/pneumoniamnist.npz",
        [{"name": "fixed_scale", "divisor": 255}, {"name": "resize", "size": [64, 64]}],
        [
            {"name": "random_flip", "axes": [-1], "p": 0.5},
            {"name": "random_affine", "degrees": 15, "scale": 0.15, "translation": 6, "p": 0.8},
            {"name": "random_brightness_contrast", "p": 0.5},
        ],
    ),
    "adrenalmnist3d": (
        "adrenalmnist3d/adrenalmnist3d.npz",
        [{"name": "fixed_scale", "divisor": 255}],
        [{"name": "random_flip", "axes": [0, 1, 2], "p": 0.5}],
    ),
}


class PreprocessThenAugment:
    """The uncached transform of a training item (as the trainer composes it)."""

    def __init__(self, preprocess: Any, augment: Any) -> None:
        self.preprocess, self.augment = preprocess, augment

    def __call__(self, image: Any, rng: Any) -> Any:
        return self.augment(self.preprocess(image), rng)


def _loader_epoch(dataset: Any, epoch: int, batch_size: int) -> tuple[float, list]:
    from torch.utils.data import DataLoader

    dataset.set_epoch(epoch)
    start = time.perf_counter()
    batches = [(x, y) for x, y, _ in DataLoader(dataset, batch_size=batch_size)]
    return time.perf_counter() - start, batches


def _model_epoch(batches: list, spatial_dims: int, size: int) -> float:
    import torch

    from medlens.models import create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", spatial_dims=spatial_dims, input_size=size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def cache_benchmark(args: argparse.Namespace, work: Path) -> dict:
    import torch

    from medlens.data.cache import CachedDataset, source_fingerprint
    from medlens.data.dataset import CaseDataset
    from medlens.data.medmnist import load_medmnist_npz
    from medlens.preprocess.pipeline import build_pipeline

    torch.set_num_threads(args.threads)
    out = {}
    for name, (rel, pre_specs, aug_specs) in CACHE_DATASETS.items():
        path = SHARED_DATA / rel
        case_set = load_medmnist_npz(path).as_source()
        cases = [c for c in case_set.cases if c.split == "train"][: args.cache_cases]
        preprocess, augment = build_pipeline(pre_specs), build_pipeline(aug_specs)
        plain = CaseDataset(case_set, cases, PreprocessThenAugment(preprocess, augment), seed=0)
        row: dict[str, Any] = {"cases": len(cases)}
        times = [_loader_epoch(plain, e, 64)[0] for e in range(args.cache_epochs)]
        row["none_epoch_s"] = round(min(times), 3)
        for mode in ("memory", "disk"):
            start = time.perf_counter()
            cached = CachedDataset(
                case_set,
                cases,
                preprocess,
                augment,
                0,
                mode,
                work / "cache",
                source_fingerprint(path),
            )
            if mode == "memory":
                cached.warm()
            row[f"{mode}_build_s"] = round(time.perf_counter() - start, 3)
            runs = [_loader_epoch(cached, e, 64) for e in range(args.cache_epochs)]
            row[f"{mode}_epoch_s"] = round(min(t for t, _ in runs), 3)
        batches = runs[-1][1]
        sample = batches[0][0]
        row["model_epoch_s"] = round(_model_epoch(batches, sample.ndim - 2, sample.shape[-1]), 3)
        best = min(row["memory_epoch_s"], row["disk_epoch_s"])
        row["loader_speedup"] = round(row["none_epoch_s"] / best, 2)
        row["train_epoch_speedup"] = round(
            (row["none_epoch_s"] + row["model_epoch_s"]) / (best + row["model_epoch_s"]), 2
        )
        out[name] = row
        print(
            f"(b) {name:15s} {len(cases)} cases: loader epoch {row['none_epoch_s']} s uncached, "
            f"{row['memory_epoch_s']} s memory, {row['disk_epoch_s']} s disk "
            f"(build {row['disk_build_s']} s); model step {row['model_epoch_s']} s/epoch"
        )
    return out


# ----------------------------------------------------------------------------- (c) DDP


def _torchrun_train(args: argparse.Namespace, work: Path, nproc: int, repeat: int) -> dict:
    """One ``torchrun --nproc_per_node nproc`` training; its timings and test AUC."""
    import yaml

    name = f"ddp{nproc}_r{repeat}"
    config = {
        "name": name,
        "seed": 0,
        "output_dir": str(work / "ddp_runs"),
        "data": {
            "format": "medmnist",
            "path": str(SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"),
            "train_fraction_used": args.ddp_fraction,
        },
        "preprocess": [
            {"name": "fixed_scale", "divisor": 255},
            {"name": "resize", "size": [args.ddp_size, args.ddp_size]},
        ],
        "augment": [{"name": "random_flip", "axes": [-1], "p": 0.5}],
        "model": {"name": "small_cnn"},
        "train": {
            "epochs": args.ddp_epochs,
            "batch_size": 64,
            "warmup_epochs": 0,
            "early_stopping_patience": None,
            "amp": False,
        },
        "evaluate": {"n_bootstrap": 0},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "medlens.cli",
        "train",
        str(path),
        "--quiet",
        "--overwrite",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"torchrun ({nproc} processes) failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((work / "ddp_runs" / name / "metrics.json").read_text())
    print(
        f"(c) torchrun {nproc} process(es), repeat {repeat + 1}: train "
        f"{metrics['train_seconds']:.1f} s for {metrics['epochs_run']} epochs, wall {wall:.1f} s"
    )
    return {
        "wall_seconds": wall,
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs_run"],
        "test_auc": round(metrics["splits"]["test"]["metrics"]["auc"]["value"], 4),
    }


def ddp_benchmark(args: argparse.Namespace, work: Path) -> dict:
    """1 vs 2 processes, ``--ddp-repeats`` times each, alternating (1, 2, 1, 2, ...) so that
    a slow spell of the machine falls on both; medians are compared."""
    import statistics

    runs: dict[int, list[dict]] = {1: [], 2: []}
    for repeat in range(args.ddp_repeats):
        for nproc in (1, 2):
            runs[nproc].append(_torchrun_train(args, work, nproc, repeat))
    out: dict[str, Any] = {}
    for nproc, rows in runs.items():
        train = [r["train_seconds"] for r in rows]
        out[str(nproc)] = {
            "train_seconds": round(statistics.median(train), 1),
            "train_seconds_each": [round(s, 1) for s in train],
            "wall_seconds": round(statistics.median(r["wall_seconds"] for r in rows), 1),
            "epochs": rows[0]["epochs"],
            "test_auc": [r["test_auc"] for r in rows],
        }
    out["speedup"] = round(out["1"]["train_seconds"] / out["2"]["train_seconds"], 2)
    out["setup"] = (
        f"small_cnn, {args.ddp_fraction:.0%} of the PneumoniaMNIST training split at "
        f"{args.ddp_size} px, batch 64 per process, {args.ddp_epochs} epochs, gloo, one thread "
        "per process"
    )
    return out


# ----------------------------------------------------------------------------- summary


def summarize(report: dict) -> dict:
    summary: dict[str, Any] = {}
    streaming = report.get("streaming")
    if streaming:
        ratios = streaming["rss_ratio_largest_vs_smallest"]
        rates = streaming["files_per_s_at_largest"]
        summary["rss_ratio_largest_vs_smallest"] = ratios
        summary["sizes_compared"] = {
            n: [min(map(int, rows)), max(map(int, rows))] for n, rows in streaming["runs"].items()
        }
        summary["rss_target_met"] = all(r <= 1.10 for r in ratios.values()) if ratios else None
        summary["files_per_s_local"] = {n: v for n, v in rates.items() if n.startswith("local")}
        summary["files_per_s_ray"] = {n: v for n, v in rates.items() if n.startswith("ray")}
    if report.get("cache"):
        summary["cache_epoch_speedup"] = {
            n: r["loader_speedup"] for n, r in report["cache"].items()
        }
        summary["cache_train_epoch_speedup"] = {
            n: r["train_epoch_speedup"] for n, r in report["cache"].items()
        }
    if report.get("ddp"):
        summary["ddp_speedup_2_vs_1"] = report["ddp"]["speedup"]
    return summary


def print_summary(report: dict) -> None:
    s = report["summary"]
    print("\n=== summary ===")
    streaming = report.get("streaming")
    if streaming:
        print(
            f"{'streaming':10s} {'files':>7s} {'files/s':>8s} {'peak RSS MiB':>13s} "
            f"{'PSS MiB':>8s} {'RSS ratio':>10s}"
        )
        for name, rows in streaming["runs"].items():
            ratio = s["rss_ratio_largest_vs_smallest"].get(name)
            for size, r in sorted(rows.items(), key=lambda kv: int(kv[0])):
                last = int(size) == streaming["largest_size"][name]
                print(
                    f"{name:10s} {int(size):7d} {r['files_per_s']:8.1f} {r['peak_rss_mb']:13.1f} "
                    f"{r['peak_pss_mb']:8.1f} {ratio if last and ratio else '':>10}"
                )
        print(
            f"  target (RSS at the largest size within 10% of the smallest): "
            f"{'met' if s['rss_target_met'] else 'NOT met'}"
        )
        print(
            f"  limits: reading + preprocessing ({streaming['cpu_ms_per_file']} ms CPU per file, "
            "mostly the anti-aliased resize of 512 px images) in the decoding workers, "
            "2 cores shared with the model process; Ray adds actor start-up and object-store "
            "copies, and its RSS counts the object store's shared pages once per process "
            "(PSS counts them once)."
        )
    if "cache_epoch_speedup" in s:
        print(
            f"{'cache':16s} {'uncached s':>10s} {'memory s':>9s} {'disk s':>7s} {'model s':>8s} "
            f"{'loader x':>9s} {'epoch x':>8s}"
        )
        for name, r in report["cache"].items():
            print(
                f"{name:16s} {r['none_epoch_s']:10.2f} {r['memory_epoch_s']:9.2f} "
                f"{r['disk_epoch_s']:7.2f} {r['model_epoch_s']:8.2f} "
                f"{r['loader_speedup']:9.2f} {r['train_epoch_speedup']:8.2f}"
            )
        print(
            "  limits: only the deterministic preprocessing is cached; the augmentation and "
            "the model step still run every epoch, so the gain is the preprocessing's share "
            "(large for a resize, none for a plain intensity scale)."
        )
    if "ddp_speedup_2_vs_1" in s:
        d = report["ddp"]
        print(
            f"DDP: 1 process {d['1']['train_seconds']} s, 2 processes {d['2']['train_seconds']} s "
            f"for {d['1']['epochs']} epochs -> {s['ddp_speedup_2_vs_1']:.2f}x "
            f"(test AUC {d['1']['test_auc']} vs {d['2']['test_auc']})"
        )
        print(
            f"  each: 1 process {d['1']['train_seconds_each']}, 2 processes {d['2']['train_seconds_each']}"
        )
        print(
            "  limits: the gradient all-reduce inside every backward pass (gloo, whose threads "
            "share the 2 cores with the two compute threads), each step waiting for the "
            "slower process, and the validation pass that every process runs whole."
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--engine-sizes",
        default=DEFAULT_PLAN,
        help="engine:file counts; engines are " + ", ".join(ENGINES),
    )
    parser.add_argument("--parts", default="streaming,cache,ddp")
    parser.add_argument("--image-size", type=int, default=28, choices=[28, 64])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-template-kb", type=int, default=600)
    parser.add_argument("--train-fraction", type=float, default=0.05)
    parser.add_argument("--cache-cases", type=int, default=100_000, help="train cases per dataset")
    parser.add_argument("--cache-epochs", type=int, default=2)
    parser.add_argument("--ddp-fraction", type=float, default=1.0)
    parser.add_argument("--ddp-epochs", type=int, default=4)
    parser.add_argument("--ddp-size", type=int, default=64, help="DDP input side, px")
    parser.add_argument("--ddp-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the model process")
    parser.add_argument(
        "--workdir", type=Path, help="where the DICOM copies go (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stream_child(json.loads(args.child))
        return
    if args.quick:
        args.cache_cases, args.ddp_fraction, args.ddp_epochs, args.ddp_size = 300, 0.03, 1, 28
        args.ddp_repeats = 1
        if args.engine_sizes == DEFAULT_PLAN:
            args.engine_sizes = QUICK_PLAN
    try:
        args.engine_sizes = parse_plan(args.engine_sizes)
    except ValueError as exc:
        parser.error(f"--engine-sizes: {exc}")
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--parts: choose from {', '.join(PARTS)}")
    out = args.out or HERE / "results" / ("scale_quick.json" if args.quick else "scale.json")
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"shared data not found at {SHARED_DATA} (set MEDLENS_SHARED_DATA)")

    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine_info(), "quick": args.quick}
    # A run of some parts keeps the other parts of an existing result file, each part with
    # the machine facts (and date) of the run that measured it.
    kept = json.loads(out.read_text()) if out.is_file() and parts != set(PARTS) else {}
    for part in PARTS:
        if part not in parts and part in kept:
            report[part] = kept[part]
            report.setdefault("measured", {})[part] = kept.get("measured", {}).get(
                part, kept.get("machine")
            )
    for part in parts:
        report.setdefault("measured", {})[part] = report["machine"]
    work = Path(tempfile.mkdtemp(prefix="medlens-scale-", dir=args.workdir))
    try:
        if "streaming" in parts:
            report["streaming"] = streaming_benchmark(args, work)
        if "cache" in parts:
            report["cache"] = cache_benchmark(args, work)
        if "ddp" in parts:
            report["ddp"] = ddp_benchmark(args, work)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if "streaming" in parts and "streaming" in kept:
        # Engines measured earlier and not in this plan are kept, each row with its own date.
        new = report["streaming"]
        for engine in set(kept["streaming"]["runs"]) - set(new["runs"]):
            for key, value in kept["streaming"].items():
                if isinstance(value, dict) and engine in value:
                    new.setdefault(key, {})[engine] = value[engine]
            new.setdefault("engines_measured_earlier", {})[engine] = kept.get("measured", {}).get(
                "streaming", kept["machine"]
            )
    report["summary"] = summarize(report)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    print(f"\nwritten: {out} ({report['total_seconds']} s)")


if __name__ == "__main__":
    main()
