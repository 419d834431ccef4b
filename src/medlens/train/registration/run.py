"""``medlens train`` for ``task: registration``: a folder of images in (``data.format:
pairs``), a VoxelMorph-style network trained on pairs of them, a run folder out.

Images are split (seeded) into train, validation and test images; the pairs are the ordered
pairs within each split (or each image with ``registration.atlas``). The network is trained
unsupervised (similarity of the warped moving image to the fixed one plus the regulariser);
the epoch with the best validation correlation is kept; validation and test pairs are then
scored once: correlation before and after, folded voxels, Dice of propagated labels.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medlens import __version__
from medlens.config import RunConfig
from medlens.errors import ConfigError, InputError
from medlens.run_folder import layout
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.train.registration.task import PairDataset, RegistrationTrainingTask
from medlens.train.seeding import seed_everything
from medlens.train.trainer import EpochCallback

SPLITS = ("train", "val", "test")
#: One row per validation and test pair.
PAIR_METRICS = "registration_pairs.csv"


def split_indices(n: int, config: RunConfig, minimum: int) -> dict[str, list[int]]:
    """A seeded split of ``n`` images, at least ``minimum`` in each split.

    Raises:
        InputError: too few images for three splits.
    """
    if n < 3 * minimum:
        raise InputError(
            config.data.path,
            f"{n} images; registration needs at least {3 * minimum} "
            f"({minimum} per split{'' if minimum == 1 else ' to form pairs'})",
        )
    order = np.random.default_rng(config.seed).permutation(n).tolist()
    n_val = max(minimum, round(n * config.data.val_fraction))
    n_test = max(minimum, round(n * config.data.test_fraction))
    if n - n_val - n_test < minimum:
        n_val = n_test = minimum
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def make_pairs(indices: Sequence[int], atlas: int | None) -> list[tuple[int, int]]:
    """(moving, fixed) pairs: every image to the atlas, or every ordered pair."""
    if atlas is not None:
        return [(i, atlas) for i in indices]
    return [(m, f) for m, f in itertools.permutations(indices, 2)]


class EpochPairs(PairDataset):
    """Training pairs, a seeded subset of ``cap`` of them drawn afresh each epoch."""

    def __init__(self, base: PairDataset, cap: int | None, seed: int) -> None:
        super().__init__(base.images, base.pairs, base.labels)
        self.all_pairs = list(base.pairs)
        self.cap = cap
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if self.cap is None or self.cap >= len(self.all_pairs):
            self.pairs = self.all_pairs
            return
        rng = np.random.default_rng([self.seed, epoch])
        chosen = rng.choice(len(self.all_pairs), size=self.cap, replace=False)
        self.pairs = [self.all_pairs[i] for i in sorted(chosen)]


def train_registration_from_config(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Train a registration network and write its run folder.

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        InputError: too few images, images on different grids, an unreadable file.
        ConfigError: a grid the network cannot take.
    """
    from medlens.data.readers import read_image
    from medlens.data.registration_pairs import read_pair_images
    from medlens.models import create_model
    from medlens.registration.losses import regulariser, similarity_loss
    from medlens.registration.pipeline import normalised_intensities
    from medlens.train.trainer import Trainer

    final_dir = config.run_dir()
    check_free(final_dir, overwrite)
    seed_everything(config.seed)
    rcfg = config.registration
    cases = read_pair_images(config.data.path)
    images = [normalised_intensities(c.image)[0] for c in cases]
    with_labels = all(c.labels is not None for c in cases)
    labels = [torch.from_numpy(c.labels.array.astype(np.float32)) for c in cases if c.labels]
    atlas_index = None
    if rcfg.atlas is not None:
        atlas = read_image(rcfg.atlas)
        if atlas.spatial_shape != cases[0].image.spatial_shape:
            raise InputError(atlas.source, "the atlas is not on the images' grid")
        images.append(normalised_intensities(atlas)[0])
        atlas_index, with_labels = len(images) - 1, False
    splits = split_indices(len(cases), config, minimum=1 if atlas_index is not None else 2)
    datasets = {
        name: PairDataset(images, make_pairs(idx, atlas_index), labels if with_labels else None)
        for name, idx in splits.items()
    }
    shape = tuple(images[0].shape[1:])
    torch.manual_seed(config.seed)
    model = create_model(
        config.model.name,
        in_channels=1,
        spatial_dims=len(shape),
        init=config.model.init,
        channels=config.model.channels,
        stem_stride=config.model.stem_stride,  # refused by the factory: voxelmorph has none
    )
    divisor = int(getattr(model, "size_divisor", 1))
    if any(s % divisor for s in shape):
        raise ConfigError(
            "model.channels",
            f"the images are {shape} voxels; {config.model.name} with these levels needs "
            f"sides that are multiples of {divisor} (use fewer levels, or crop the images)",
        )
    stage = open_stage(final_dir, resume=resume)
    task = RegistrationTrainingTask(
        similarity_loss(rcfg.loss, len(shape), rcfg.ncc_kernel),
        regulariser(rcfg.regulariser),
        rcfg.regulariser_weight,
        datasets["val"],
        rcfg.diffeomorphic,
        rcfg.integration_steps,
    )
    train_pairs = EpochPairs(datasets["train"], rcfg.pairs_per_epoch, config.seed)
    loader = DataLoader(
        train_pairs,
        batch_size=config.train.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        num_workers=config.train.num_workers,
    )
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model.to(device)
    fit = Trainer(
        model,
        [{"params": list(model.parameters())}],
        loader,
        task,
        config.train,
        device,
        checkpoint_dir=stage,
        callbacks=callbacks,
        progress=progress,
        fingerprint=hashlib.sha256(config.to_yaml().encode()).hexdigest(),
    ).fit(resume=resume)
    model.load_state_dict(fit.best_state)
    rows = [
        {
            "split": split,
            "moving": cases[m].case_id if m < len(cases) else "atlas",
            "fixed": cases[f].case_id if f < len(cases) else "atlas",
            **row,
        }
        for split in ("val", "test")
        for (m, f), row in zip(
            datasets[split].pairs, score_pairs(task, model, datasets[split], device), strict=True
        )
    ]
    writer = RunWriter(stage)
    writer.config(config)
    writer.table(PAIR_METRICS, rows)
    writer.table(layout.HISTORY, fit.history)
    writer.metrics(
        {
            "task": config.task,
            "model": config.model.name,
            "splits": {
                s: _mean_rows([r for r in rows if r["split"] == s]) for s in ("val", "test")
            },
            "pairs": {name: len(d) for name, d in datasets.items()},
            "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history),
            "planned_epochs": fit.planned_epochs,
            "train_seconds": fit.train_seconds,
        }
    )
    writer.json(
        layout.DATA_SUMMARY,
        {
            "splits": {name: {"n": len(idx)} for name, idx in splits.items()},
            "source": str(config.data.path),
            "labels": with_labels,
            "atlas": str(rcfg.atlas) if rcfg.atlas else None,
            "skipped_files": [],
        },
    )
    writer.checkpoint(
        {
            "model": model.state_dict(),
            "model_config": getattr(model, "config", {}),
            "best_epoch": fit.best_epoch,
            "input_shape": [1, *shape],
            "task": config.task,
            "medlens_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir


@torch.no_grad()
def score_pairs(
    task: RegistrationTrainingTask, model: torch.nn.Module, pairs: PairDataset, device: torch.device
) -> list[dict[str, Any]]:
    """Per pair: correlation before and after, folded voxels (%), and the mean Dice of the
    propagated labels before and after when the images have labels."""
    from medlens.metrics.registration import folded_percentage, propagated_label_metrics
    from medlens.registration.jacobian import jacobian_determinant
    from medlens.registration.learned import warp
    from medlens.train.registration.task import batch_correlation

    model.eval()
    out = []
    for index in range(len(pairs)):
        item = pairs[index]
        moving, fixed = item["moving"][None].to(device), item["fixed"][None].to(device)
        ddf = task.displacement(model, moving, fixed)
        row: dict[str, Any] = {
            "ncc_before": float(batch_correlation(moving, fixed)[0]),
            "ncc": float(batch_correlation(warp(moving, ddf), fixed)[0]),
            "folded_pct": folded_percentage(jacobian_determinant(ddf[0].cpu().numpy())),
        }
        if "moving_labels" in item:
            ref = item["fixed_labels"][0].numpy()
            before = item["moving_labels"][0].numpy()
            after = warp(item["moving_labels"][None].to(device), ddf, nearest=True)[0, 0]
            for key, warped in (("dice_before", before), ("dice", after.cpu().numpy())):
                scores = propagated_label_metrics(warped.round(), ref)
                row[key] = float(np.mean([s["dice"] for s in scores.values()])) if scores else None
        out.append(row)
    return out


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in rows[0] if k not in ("split", "moving", "fixed")] if rows else []
    means = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    return {"n": len(rows), **means}
