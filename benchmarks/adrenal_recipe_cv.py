"""Choosing AdrenalMNIST3D's recipe by 3-fold cross-validation on its training split.

The official validation split has 98 cases, too few to tell recipes apart, and the test
split must not choose anything. Each fold trains on two thirds of the official training
split, chooses its epoch and threshold on the official validation split, and is scored on
the held-out third of the training split. The official test split is never read, which is
why this is not ``medlens cv``: its folds pool every case of the source, test split included.

Every candidate is ``configs/adrenalmnist3d_small_cnn.yaml`` with the overrides below, the
same seed per fold (the fold's index) and the same wall-time budget. Since round 7 the recipe
reads the native 64^3 volumes into four blocks (8-16-32-64 channels); the candidates of
rounds 1-6 name the two blocks (32, 64) they ran with, and those of rounds 1-3 read the 28^3
file, where the resize of rounds 4-6 is a no-op and the memory cache changes nothing, so
they are what they were.
A candidate that names ``members`` (rounds 5 and 6) splits the budget among that many runs,
each with its own seed, and is scored as their soft-mean ensemble (``medlens ensemble``).

The candidates come in rounds (``ROUNDS``); each round's rule was written down before its
first run: adopt the candidate with the highest mean held-out AUC over the folds if it beats
the round's recipe of the time (its ``baseline``); otherwise keep that recipe. The last
round's choice is the recipe. A round trains at its own budget (4 minutes per fold unless it
names another).

    python benchmarks/adrenal_recipe_cv.py --rows ROWS.jsonl   # the last round, at its budget
    python benchmarks/adrenal_recipe_cv.py --rows ROWS.jsonl --summarise-only

Each finished run is appended to ``--rows`` at once, and a rerun skips the runs found there.
Writes ``benchmarks/results/adrenal_recipe_cv.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402
from classification import held_out_figures  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402
from medlens.pipeline.folds import fold_indices  # noqa: E402

SOURCE = SHARED_DATA / "adrenalmnist3d" / "adrenalmnist3d.npz"
#: The same cases at 64^3 (MedMNIST+; strictly binary masks), for round 4.
SOURCE_64 = SHARED_DATA / "adrenalmnist3d" / "adrenalmnist3d_64.npz"
FOLDS = 3
#: Minutes of training per fold, unless a round names another budget.
DEFAULT_MINUTES = 4.0
_FLIP = {"name": "random_flip", "axes": [0, 1, 2], "p": 0.5}
_AFFINE = {"name": "random_affine", "degrees": 15, "scale": 0.1, "translation": 2, "p": 0.8}
_ROTATE = {"name": "random_rotate", "degrees": 15, "p": 0.8}
_SCALE = {"name": "fixed_scale", "divisor": 255}


def _resize(size: int) -> dict[str, Any]:
    """Linear resampling to ``size`` voxels a side; downsampling smooths first."""
    return {"name": "resize", "size": size, "order": 1}


#: small_cnn's blocks in the recipe of rounds 1-6 (the config's default then). Round 7 chose
#: four blocks for the config, so the earlier candidates name the two they were run with.
_TWO_BLOCKS = {"model__channels": [32, 64]}

#: Round 4's choice, the recipe of rounds 5-6.
_L = {
    **_TWO_BLOCKS,
    "augment": [_FLIP],
    "train__weight_decay": 0.05,
    "preprocess": [_resize(28), _SCALE],
    "data__cache": "memory",
}

#: Round 7's choice, the recipe since: the native 64^3 masks into four blocks.
_Q = {
    "augment": [_FLIP],
    "train__weight_decay": 0.05,
    "preprocess": [_resize(64), _SCALE],
    "data__cache": "memory",
    "model__channels": [8, 16, 32, 64],
}

#: Overrides of the recipe per candidate (``benchmarks/classification.py``'s ``--extra``).
CANDIDATES: dict[str, dict[str, Any]] = {
    "A_current": {**_TWO_BLOCKS, "augment": [_FLIP], "train__weight_decay": 1e-4},
    "B_affine": {**_TWO_BLOCKS, "augment": [_FLIP, _AFFINE], "train__weight_decay": 1e-4},
    "C_wd0.05": {**_TWO_BLOCKS, "augment": [_FLIP], "train__weight_decay": 0.05},
    "D_affine_wd0.05": {**_TWO_BLOCKS, "augment": [_FLIP, _AFFINE], "train__weight_decay": 0.05},
    # Added after folds 0-1 of B and D, which lost to A: rotation without the scaling, as
    # these volumes are shape masks whose size may be the cue.
    "E_rotate_wd0.05": {**_TWO_BLOCKS, "augment": [_FLIP, _ROTATE], "train__weight_decay": 0.05},
    # Round 2: regularisers on top of C, the recipe round 1 chose.
    "F_wd0.05_ema1": {
        **_TWO_BLOCKS,
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "train__ema_half_life_epochs": 1.0,
    },
    "G_wd0.05_ls0.1": {
        **_TWO_BLOCKS,
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "train__label_smoothing": 0.1,
    },
    "H_wd0.05_dropout0.3": {
        **_TWO_BLOCKS,
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "model__dropout": 0.3,
    },
    # Round 3: small_cnn's shape (model.channels) on top of C; C is 32, 64. Measured per
    # training step at 28^3 on 2 cores before the runs: 32-64-128 costs 1.2x C's step,
    # 16-32 and 16-32-64 0.4x, so each fits at least C's epochs in the budget. A wider
    # 64-128 (2.6x, about 7 epochs in 4 min) was left out: the budget would not train it.
    "I_wd0.05_32-64-128": {
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "model__channels": [32, 64, 128],
    },
    "J_wd0.05_16-32": {
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "model__channels": [16, 32],
    },
    "K_wd0.05_16-32-64": {
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "model__channels": [16, 32, 64],
    },
    # Round 4: the resolution. The 28^3 file is nearly binary (MedMNIST's own downsampling);
    # the 64^3 masks resampled here with linear interpolation and anti-aliasing keep the
    # partial-volume fraction of each voxel, a finer account of the outline. Same network as
    # C. Measured per training step on 2 cores before the runs: 28^3 1.0x C's step, 32^3
    # 1.6x (about 11 epochs in 4 min; C's best epochs were 6-12). The native 64^3 volumes
    # were left out: even 8-16-32-64 channels cost 3.8x (about 5 epochs in 4 min).
    "L_wd0.05_64to28": _L,
    "M_wd0.05_64to32": {
        **_TWO_BLOCKS,
        "augment": [_FLIP],
        "train__weight_decay": 0.05,
        "preprocess": [_resize(32), _SCALE],
        "data__cache": "memory",
    },
    # Round 5: the budget split among the members of a soft-mean ensemble (``members``, not
    # an override: each member is L with its own seed and ``minutes / members``). At the
    # full budget L's best validation epoch came at 7-13 of 37-39, so most of a single run's
    # time goes to epochs that are not kept; members with shorter schedules may use it
    # better. Measured per fold in the same total time as L.
    "N_64to28_2x": {**_L, "members": 2},
    "O_64to28_3x": {**_L, "members": 3},
    # Round 6 (15 minutes per fold, the full budget): round 5's members had 1.3-2 minutes
    # and were undertrained. Three members of 5 minutes each (about 13 epochs, where the
    # single 15-minute run's best epochs are 7-13) against the recipe at the same budget.
    "L_64to28_15min": _L,
    "P_64to28_3x_15min": {**_L, "members": 3},
    # Round 7 (15 minutes per fold): the native 64^3 masks, left out of round 4 for their
    # cost. Four blocks, 8-16-32-64 channels (the first at 64^3, then 32^3, 16^3, 8^3):
    # measured before the runs at 3.8x L's step on 2 cores (2.05 s against 0.53 s for a
    # batch of 32), about 15 epochs in 15 minutes, where L's best epochs at that budget were
    # 6-27 and at 4 minutes (15-16 epochs) 8-11.
    # The resize is a no-op on these volumes (exactly), added after the runs so that a 28^3
    # volume given to the recipe reaches the network at the size it was trained on.
    "Q_native64_8-16-32-64_15min": _Q,
    # Round 8 (15 minutes per fold): Q's runs fit 15 epochs, and their best epoch was 13 of
    # 15 in two folds of three, so the budget limits it. R is Q with a strided first
    # convolution in place of the first max pool (model.stem_stride 2): the same resolution
    # after every block, measured before the runs at 0.61 s against 1.42 s per training step
    # of 32 volumes (both channels-last, 2 cores), so about twice Q's epochs fit.
    # R runs in the code of the twenty-sixth session, which trains small_cnn channels-last;
    # Q's round-7 rows ran in the default layout. Round 8 measures R against those rows: if
    # R does not beat them, Q stays and round 9 is not run. Otherwise round 9 reruns Q in
    # R's code (Q_cl, the same overrides as Q) and R is adopted only if it beats that too.
    "R_native64_stride2_15min": {**_Q, "model__stem_stride": 2},
    "Q_cl_15min": _Q,
}
#: Candidates read from the 64^3 file; the rest from the 28^3 one. The folds hold the same
#: cases in both (the two files' labels agree case for case).
FROM_64 = {
    "L_wd0.05_64to28",
    "M_wd0.05_64to32",
    "N_64to28_2x",
    "O_64to28_3x",
    "L_64to28_15min",
    "P_64to28_3x_15min",
    "Q_native64_8-16-32-64_15min",
    "R_native64_stride2_15min",
    "Q_cl_15min",
}
#: Each round: the recipe of the time (``baseline``) and the candidates it is measured against.
ROUNDS: list[dict[str, Any]] = [
    {
        "baseline": "A_current",
        "candidates": ["A_current", "B_affine", "C_wd0.05", "D_affine_wd0.05", "E_rotate_wd0.05"],
    },
    {
        "baseline": "C_wd0.05",
        "candidates": ["C_wd0.05", "F_wd0.05_ema1", "G_wd0.05_ls0.1", "H_wd0.05_dropout0.3"],
    },
    {
        "baseline": "C_wd0.05",
        "candidates": [
            "C_wd0.05",
            "I_wd0.05_32-64-128",
            "J_wd0.05_16-32",
            "K_wd0.05_16-32-64",
        ],
    },
    {
        "baseline": "C_wd0.05",
        "candidates": ["C_wd0.05", "L_wd0.05_64to28", "M_wd0.05_64to32"],
    },
    {
        "baseline": "L_wd0.05_64to28",
        "candidates": ["L_wd0.05_64to28", "N_64to28_2x", "O_64to28_3x"],
    },
    {
        "baseline": "L_64to28_15min",
        "candidates": ["L_64to28_15min", "P_64to28_3x_15min"],
        "minutes": 15.0,
    },
    {
        "baseline": "L_64to28_15min",
        "candidates": ["L_64to28_15min", "Q_native64_8-16-32-64_15min"],
        "minutes": 15.0,
    },
    {
        "baseline": "Q_native64_8-16-32-64_15min",
        "candidates": ["Q_native64_8-16-32-64_15min", "R_native64_stride2_15min"],
        "minutes": 15.0,
        # a screen: its choice only decides whether round 9 runs, never the recipe
        "screen": True,
    },
    {
        "baseline": "Q_cl_15min",
        "candidates": ["Q_cl_15min", "R_native64_stride2_15min"],
        "minutes": 15.0,
    },
]


def write_folds(folder: Path, seed: int = 0, source: Path | None = None) -> list[Path]:
    """One npz per fold in MedMNIST's layout: train = two thirds of the official training
    split, val = the official validation split, test = the held-out third.

    ``source`` (default ``SOURCE``) is the file read; the folds depend only on its labels, so
    the 28^3 and 64^3 files give the same cases to each fold."""
    source = SOURCE if source is None else source
    data = dict(np.load(source))
    labels = data["train_labels"].ravel()
    paths = []
    for k, held_out in enumerate(fold_indices(labels, FOLDS, seed)):
        train = np.setdiff1d(np.arange(len(labels)), held_out)
        path = folder / f"{source.stem}_fold{k}.npz"
        np.savez(
            path,
            train_images=data["train_images"][train],
            train_labels=data["train_labels"][train],
            val_images=data["val_images"],
            val_labels=data["val_labels"],
            test_images=data["train_images"][held_out],
            test_labels=data["train_labels"][held_out],
        )
        paths.append(path)
    return paths


def split_members(spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A candidate's overrides of the recipe, and how many ensemble members share its budget
    (1: a single run)."""
    members = int(spec.get("members", 1))
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    return {k: v for k, v in spec.items() if k != "members"}, members


def member_seeds(fold: int, members: int) -> list[int]:
    """The members' seeds in fold ``fold``: the first is the single run's (the fold's index),
    the others distinct from every fold's."""
    return [fold + FOLDS * m for m in range(members)]


def ensemble_row(run_dirs: list[Path], member_rows: list[dict], out: Path) -> dict:
    """The soft-mean ensemble of a fold's members (``medlens ensemble``), in a single run's
    row: its held-out figures, with the members' epochs and minutes."""
    from medlens.commands.ensemble import ensemble_runs

    folder = ensemble_runs(run_dirs, "soft", out.parent, name=out.name, documents=False)
    return {
        **held_out_figures(folder),
        "best_epoch": [r["best_epoch"] for r in member_rows],
        "epochs": [r["epochs"] for r in member_rows],
        "train_minutes": sum(r["train_minutes"] for r in member_rows),
        "member_test_auc": [r["test_auc"] for r in member_rows],
    }


def _train_member(
    fold: Path, seed: int, minutes: float, work: Path, threads: int, extra: dict
) -> dict:
    cmd = [sys.executable, str(HERE / "classification.py"), "--child", "medlens"]
    cmd += ["--dataset", "adrenal", "--seed", str(seed), "--minutes", str(minutes)]
    cmd += ["--workdir", str(work), "--threads", str(threads)]
    cmd += ["--extra", json.dumps({"data__path": str(fold), **extra})]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{work.name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def source_of(name: str) -> Path:
    """The file a candidate's folds are cut from."""
    return SOURCE_64 if name in FROM_64 else SOURCE


def read_rows(rows: Path) -> list[dict]:
    if not rows.exists():
        return []
    return [json.loads(line) for line in rows.read_text().splitlines() if line.strip()]


def train_all(minutes: float, rows: Path, threads: int, names: list[str]) -> None:
    """Train every fold of ``names`` not yet in ``rows``, appending each run as it ends."""
    done = {(r["candidate"], r["fold"]) for r in read_rows(rows)}
    with tempfile.TemporaryDirectory(prefix="medlens-recipe-cv-") as tmp:
        work = Path(tmp)
        todo = [n for n in names if any((n, k) not in done for k in range(FOLDS))]
        sources = {source_of(n) for n in todo}
        fold_files = {source: write_folds(work, source=source) for source in sources}
        for k in range(FOLDS):
            for name in names:
                if (name, k) in done:
                    continue
                extra, members = split_members(CANDIDATES[name])
                fold = fold_files[source_of(name)][k]
                dirs = [work / f"{name}_f{k}_m{m}" for m in range(members)]
                member_rows = [
                    _train_member(fold, seed, minutes / members, folder, threads, extra)
                    for seed, folder in zip(member_seeds(k, members), dirs, strict=True)
                ]
                if members == 1:
                    row = member_rows[0]
                else:
                    runs = [
                        d / f"adrenal-s{seed}"
                        for d, seed in zip(dirs, member_seeds(k, members), strict=True)
                    ]
                    row = ensemble_row(runs, member_rows, work / f"{name}_f{k}_ensemble")
                row.update(candidate=name, fold=k, minutes_per_run=minutes, members=members)
                with rows.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(
                    f"[{time.strftime('%H:%M:%S')}] {name} fold {k}: held-out AUC "
                    f"{row['test_auc']:.4f}, ACC {row['test_acc_at_val_threshold']:.3f}, "
                    f"best epoch {row['best_epoch']} of {row['epochs']}",
                    flush=True,
                )


def round_minutes(round_: dict[str, Any]) -> float:
    """A round's training budget per fold, in minutes (every candidate in it has the same)."""
    return float(round_.get("minutes", DEFAULT_MINUTES))


def choose(candidates: dict[str, dict], round_: dict[str, Any]) -> str:
    """A round's rule: its complete candidate with the best mean held-out AUC if that beats
    the round's baseline, else the baseline."""
    complete = {
        n: candidates[n]["heldout_auc_mean"]
        for n in round_["candidates"]
        if n in candidates and candidates[n]["complete"]
    }
    baseline = round_["baseline"]
    if not complete:
        return baseline
    best = max(complete, key=lambda n: complete[n])
    return best if complete[best] > complete.get(baseline, float("-inf")) else baseline


def summarise(rows: list[dict], rounds: list[dict[str, Any]] = ROUNDS) -> dict:
    """Per candidate: the held-out figures of each fold and their mean; per round whose
    baseline has every fold, the rule's choice among its candidates with every fold finished;
    ``chosen``: the last such round's that is not a screen (a screen only decides whether
    the next round runs)."""
    out: dict[str, Any] = {}
    for name in CANDIDATES:
        mine = sorted((r for r in rows if r["candidate"] == name), key=lambda r: r["fold"])
        if not mine:
            continue
        auc = [r["test_auc"] for r in mine]
        out[name] = {
            "overrides": CANDIDATES[name],
            "folds": [r["fold"] for r in mine],
            "heldout_auc": auc,
            "heldout_acc_at_val_threshold": [r["test_acc_at_val_threshold"] for r in mine],
            "best_epoch": [r["best_epoch"] for r in mine],
            "epochs": [r["epochs"] for r in mine],
            "complete": len(mine) == FOLDS,
            "heldout_auc_mean": statistics.fmean(auc),
        }
    # A round is decided once its baseline has every fold: a round whose baseline was never
    # run (round 9 after round 8 kept its baseline) chooses nothing.
    chosen_per_round = [
        {**round_, "chosen": choose(out, round_)}
        for round_ in rounds
        if out.get(round_["baseline"], {}).get("complete", False)
    ]
    adopting = [r for r in chosen_per_round if not r.get("screen", False)]
    chosen = adopting[-1]["chosen"] if adopting else rounds[0]["baseline"]
    return {"candidates": out, "rounds": chosen_per_round, "chosen": chosen}


def joined_note(out: Path, note: str) -> str:
    """The note of the report at ``out`` (if any), then ``note``: each round adds its own
    account and none is lost when a later round rewrites the report. A note the earlier one
    already holds (a summary rerun with the same ``--note``) is not added twice."""
    earlier = json.loads(out.read_text()).get("note", "") if out.exists() else ""
    if note in earlier:
        return earlier
    return " ".join(part for part in (earlier, note) if part)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="training budget per fold (default: the round's, 4 unless it names another)",
    )
    parser.add_argument("--rows", type=Path, required=True, help="JSON lines, one per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--round",
        type=int,
        default=len(ROUNDS),
        choices=range(1, len(ROUNDS) + 1),
        help="which round to train (1-based; default: the last)",
    )
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument(
        "--note",
        default="",
        help="a sentence on how the runs went, added after the earlier report's note",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "adrenal_recipe_cv.json")
    args = parser.parse_args()
    if not args.summarise_only:
        round_ = ROUNDS[args.round - 1]
        minutes = round_minutes(round_) if args.minutes is None else args.minutes
        train_all(minutes, args.rows, args.threads, round_["candidates"])
    rows = read_rows(args.rows)
    report = {
        "machine": machine_info(),
        "minutes_per_run": sorted({r["minutes_per_run"] for r in rows}),
        "folds": FOLDS,
        "rule": "per round: the highest mean held-out AUC over the folds, if above the round's "
        "baseline's; the recipe is the last round's choice",
        "note": joined_note(args.out, args.note),
        **summarise(rows),
    }
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    for name, c in report["candidates"].items():
        print(f"{name:18s} held-out AUC {c['heldout_auc_mean']:.4f} over folds {c['folds']}")
    for k, round_ in enumerate(report["rounds"], start=1):
        print(f"round {k}: baseline {round_['baseline']}, chosen {round_['chosen']}")
    print(f"chosen: {report['chosen']}")


if __name__ == "__main__":
    main()
