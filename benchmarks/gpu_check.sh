#!/usr/bin/env bash
# GPU check: classification and segmentation training on CUDA, plus the surface-metric
# benchmark, timed and written to benchmarks/results/gpu.json with the card's name.
# 2 min (at most 20 epochs) of ResNet-18 training on PneumoniaMNIST and 2 min of U-Net training
# on DRIVE, each followed by its evaluation and report, then benchmarks/surface_metrics.py
# --quick. On an H200: 1.5 + 2.6 minutes for the two trainings; the surface metrics, which run on
# the CPU, took more than 4 minutes there.
#
#   benchmarks/gpu_check.sh [DATA_DIR]          run from anywhere; works in the repo root
#
# DATA_DIR (or $MEDLENS_SHARED_DATA) is the folder that holds pneumoniamnist_subset/ and
# drive_retina_vessels/ (../shared/data beside the repo on the development machines). A GPU
# machine may not have it: copy those two folders (about 15 MB) into the repo, e.g. into an
# ignored ./gpu-data/, and pass that folder.
#
# Python: $MEDLENS_PYTHON if set, else the first of .venv/bin/python, python3 whose torch sees
# CUDA; medlens is imported from ./src (no install needed). Packages it lacks are installed
# from wheels in ./.whl when that folder exists (no network), else with pip (needs the
# registry); otherwise the script stops and names them. With no CUDA GPU it stops at once
# (ALLOW_CPU=1 runs it on the CPU anyway: a dry run of the script itself, not a GPU figure).
#
# Knobs (environment): CLS_MINUTES=2 SEG_MINUTES=2 CLS_EPOCHS=20 LOADER_WORKERS=8
# OUT_JSON=benchmarks/results/gpu.json WORK_DIR=(a temp dir) ALLOW_CPU=0 SURFACE=1 (0 skips
# the surface-metric benchmark) SURFACE_LIMIT=480 (its seconds) CLS_EXTRA= SEG_EXTRA= (more
# `--set key=value` arguments for each training, e.g. a smaller data.train_fraction_used for
# a dry run)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

die() {
  echo "gpu_check: $*" >&2
  exit 1
}

DATA=${1:-${MEDLENS_SHARED_DATA:-../shared/data}}
CLS_MINUTES=${CLS_MINUTES:-2}
SEG_MINUTES=${SEG_MINUTES:-2}
CLS_EPOCHS=${CLS_EPOCHS:-20}
LOADER_WORKERS=${LOADER_WORKERS:-8}
OUT_JSON=${OUT_JSON:-benchmarks/results/gpu.json}
ALLOW_CPU=${ALLOW_CPU:-0}
SURFACE=${SURFACE:-1}
SURFACE_LIMIT=${SURFACE_LIMIT:-480}
CLS_EXTRA=${CLS_EXTRA:-}
SEG_EXTRA=${SEG_EXTRA:-}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/medlens-gpu-check.XXXXXX)}

# --- data -----------------------------------------------------------------------------
PNEUMONIA=$DATA/pneumoniamnist_subset/pneumoniamnist.npz
DRIVE=$DATA/drive_retina_vessels
[ -f "$PNEUMONIA" ] && [ -d "$DRIVE" ] || die "data not found under '$DATA' (need
  $PNEUMONIA and $DRIVE/).
  Pass the data folder as the first argument or set MEDLENS_SHARED_DATA; on a machine
  without ../shared/data, copy pneumoniamnist_subset/ and drive_retina_vessels/ into the
  repo (e.g. ./gpu-data/) and run: benchmarks/gpu_check.sh gpu-data"
DATA=$(cd "$DATA" && pwd)

# --- python ---------------------------------------------------------------------------
torch_sees_cuda() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
PY=${MEDLENS_PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in .venv/bin/python "$(command -v python3 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && torch_sees_cuda "$candidate"; then
      PY=$candidate
      break
    fi
  done
fi
if [ -z "$PY" ] || ! torch_sees_cuda "$PY"; then
  if [ "$ALLOW_CPU" = 1 ]; then
    PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3)}
    echo "gpu_check: ALLOW_CPU=1 and no CUDA: a dry run on the CPU with $PY" >&2
  else
    command -v nvidia-smi >/dev/null && nvidia-smi -L >&2 || echo "gpu_check: nvidia-smi not found" >&2
    die "no CUDA GPU visible to PyTorch (checked ${PY:-.venv/bin/python and python3}; set
  MEDLENS_PYTHON to a Python whose torch is built with CUDA). This check needs a GPU."
  fi
fi
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

# Import name -> distribution name, for every dependency in pyproject.toml.
missing_packages() {
  "$PY" - <<'EOF'
import importlib.util
needed = {
    "torch": "torch", "torchvision": "torchvision", "timm": "timm", "monai": "monai",
    "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn", "skimage": "scikit-image",
    "pandas": "pandas", "pydicom": "pydicom", "pylibjpeg": "pylibjpeg", "nibabel": "nibabel",
    "PIL": "pillow", "pydantic": "pydantic", "yaml": "pyyaml", "typer": "typer",
    "rich": "rich", "tqdm": "tqdm", "matplotlib": "matplotlib", "jinja2": "jinja2",
    "highdicom": "highdicom", "pytorch_grad_cam": "grad-cam", "captum": "captum",
    "fairlearn": "fairlearn",
}
print(" ".join(dist for mod, dist in needed.items() if importlib.util.find_spec(mod) is None))
EOF
}
MISSING=$(missing_packages)
case " $MISSING " in
  *" torch "*) die "$PY has no torch: set MEDLENS_PYTHON to the Python whose torch sees the GPU
  (this script never installs torch, whose CUDA build is several GB)" ;;
esac
if [ -n "$MISSING" ]; then
  echo "gpu_check: $PY lacks: $MISSING" >&2
  SITE=/tmp/medlens-gpu-site
  if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl
  else
    "$PY" -m pip install -q --target "$SITE" $MISSING || true
  fi
  export PYTHONPATH="$PYTHONPATH:$SITE"
  MISSING=$(missing_packages)
  [ -z "$MISSING" ] || die "still missing: $MISSING. Without a package registry, download
  their wheels on a machine with one into ./.whl (pip download --no-deps --only-binary=:all:
  --python-version <that Python's> -d .whl NAME) and run again."
fi

CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
echo "gpu_check: python $PY, card '${CARD:-none}', data $DATA, work folder $WORK_DIR"
mkdir -p "$WORK_DIR" "$(dirname "$OUT_JSON")"

# --- the runs -------------------------------------------------------------------------
# Seconds of wall time of one command, its output in $WORK_DIR/<name>.log.
timed() {
  local name=$1 limit=$2
  shift 2
  local start end
  start=$(date +%s.%N)
  if ! timeout "$limit" "$@" >"$WORK_DIR/$name.log" 2>&1; then
    tail -n 40 "$WORK_DIR/$name.log" >&2
    die "$name failed or ran past ${limit}s (log: $WORK_DIR/$name.log)"
  fi
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }' >"$WORK_DIR/$name.seconds"
  echo "gpu_check: $name took $(cat "$WORK_DIR/$name.seconds") s"
}

timed classification $((${CLS_MINUTES%.*} * 60 + 240)) \
  "$PY" -m medlens.cli train configs/pneumoniamnist_resnet18.yaml --quiet --overwrite \
  --set "data.path=$PNEUMONIA" --set "output_dir=$WORK_DIR/runs" --set name=gpu-classification \
  --set "train.max_minutes=$CLS_MINUTES" --set "train.epochs=$CLS_EPOCHS" \
  --set "train.num_workers=$LOADER_WORKERS" --set evaluate.n_bootstrap=200 $CLS_EXTRA

timed segmentation $((${SEG_MINUTES%.*} * 60 + 240)) \
  "$PY" -m medlens.cli train configs/drive_unet.yaml --quiet --overwrite \
  --set "data.path=$DRIVE" --set "output_dir=$WORK_DIR/runs" --set name=gpu-segmentation \
  --set "train.max_minutes=$SEG_MINUTES" --set "train.num_workers=$LOADER_WORKERS" $SEG_EXTRA

# The surface metrics run on the CPU (one child process per memory reading, each importing
# torch): on the H200 machine they took more than 240 s, against 46 s here. Their failure no
# longer costs the training figures above: gpu.json is written either way.
if [ "$SURFACE" = 1 ]; then
  (timed surface_metrics "$SURFACE_LIMIT" "$PY" benchmarks/surface_metrics.py --quick) ||
    echo "gpu_check: the surface metrics did not finish; gpu.json records none" >&2
fi

# --- gpu.json -------------------------------------------------------------------------
CARD="$CARD" WORK_DIR="$WORK_DIR" OUT_JSON="$OUT_JSON" "$PY" - <<'EOF'
import json, math, os, time
from pathlib import Path

import torch
import yaml

work = Path(os.environ["WORK_DIR"])


def run_figures(name: str) -> dict:
    run = work / "runs" / name
    metrics = json.loads((run / "metrics.json").read_text())
    summary = json.loads((run / "data_summary.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    n_train = summary["splits"]["train"]["n"]
    epochs, seconds = metrics["epochs_run"], metrics["train_seconds"]
    out = {
        "wall_seconds": float((work / f"{name.split('-', 1)[1]}.seconds").read_text()),
        "train_seconds": round(seconds, 1),
        "epochs_run": epochs,
        "planned_epochs": metrics.get("planned_epochs"),
        "train_cases": n_train,
        "batch_size": config["train"]["batch_size"],
    }
    if metrics["task"] == "classification":
        out["images_per_s"] = round(epochs * n_train / seconds, 1)
        out["steps_per_s"] = round(epochs * math.ceil(n_train / out["batch_size"]) / seconds, 2)
        out["test"] = {k: metrics["splits"]["test"]["metrics"].get(k) for k in ("auc", "accuracy")}
    else:
        patches = n_train * config["segmentation"]["patches_per_image"]
        out["patches_per_s"] = round(epochs * patches / seconds, 1)
        out["steps_per_s"] = round(epochs * math.ceil(patches / out["batch_size"]) / seconds, 2)
        test = metrics["splits"].get("test") or {}
        out["test_means"] = {
            cls: {m: (v or {}).get("mean") for m, v in per_class.items()}
            for cls, per_class in test.items()
        }
    return out


surface = Path("benchmarks/results/surface_metrics_quick.json")
report = {
    "card": os.environ.get("CARD") or (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
    "cuda_available": torch.cuda.is_available(),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "classification": run_figures("gpu-classification"),
    "segmentation": run_figures("gpu-segmentation"),
    "surface_metrics_quick": {
        "wall_seconds": float((work / "surface_metrics.seconds").read_text())
        if (work / "surface_metrics.seconds").is_file()
        else None,
        # Only a run that finished here: the committed file holds the development machine's.
        "results": json.loads(surface.read_text())
        if surface.is_file() and (work / "surface_metrics.seconds").is_file()
        else None,
    },
}
Path(os.environ["OUT_JSON"]).write_text(json.dumps(report, indent=2) + "\n")
c, s = report["classification"], report["segmentation"]
print(f"card: {report['card']} (torch {report['torch']}, CUDA {report['cuda']})")
print(f"classification: {c['images_per_s']} images/s, {c['epochs_run']} epochs in {c['train_seconds']} s")
print(f"segmentation:   {s['patches_per_s']} patches/s, {s['epochs_run']} epochs in {s['train_seconds']} s")
print(f"written: {os.environ['OUT_JSON']}")
EOF
