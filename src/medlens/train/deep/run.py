"""``medlens train``: config in, self-contained run folder out.

The run is built in ``<output_dir>/<name>.partial/`` and renamed to ``<name>/`` only when
every file is written, so a killed run never looks finished; ``resume=True`` continues a
killed run from ``<name>.partial/last.pt``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from medlens import __version__
from medlens.config import RunConfig
from medlens.data.case import Case, CaseSet
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.io_utils import publish_run, write_atomic, write_json_atomic
from medlens.run_folder.checkpoint import save_checkpoint
from medlens.train.distributed import DistContext, barrier, init_distributed
from medlens.train.losses import classification_loss, inverse_frequency_weights
from medlens.train.sampler import EpochSampler
from medlens.train.seeding import seed_everything
from medlens.train.trainer import (
    ClassificationTask,
    EpochCallback,
    FitResult,
    Trainer,
    predict_probs,
)

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class PreparedData:
    case_set: CaseSet
    splits: dict[str, list[Case]]
    skipped: list[dict[str, str]]


def prepare_data(config: RunConfig) -> PreparedData:
    """Open the source, drop (and list) bad files when ``skip_bad``, and split the cases."""
    from medlens.data.sources import check_cases, open_source
    from medlens.data.splits import subsample_train, with_kfold_split

    case_set = open_source(config.data)
    cases = list(case_set.cases)
    skipped: list[dict[str, str]] = []
    if config.data.format != "medmnist":
        # Read every file once before training, so a bad file stops the run now (or, with
        # skip_bad, is listed) rather than in the middle of epoch 7. MedMNIST arrays are
        # validated when the .npz is opened.
        good, bad = check_cases(case_set, fail_fast=not config.data.skip_bad)
        cases = list(good)
        skipped = [{"file": c.source or c.case_id, "reason": reason} for c, reason in bad]
    if config.data.folds is not None:
        cases = with_kfold_split(
            cases, config.data.folds, config.data.fold, config.data.val_fraction, seed=0
        )
    splits = {name: [c for c in cases if c.split == name] for name in SPLITS}
    for name in SPLITS:
        if not splits[name]:
            raise InputError(config.data.path, f"the {name} split is empty")
    unlabelled = [c for c in cases if c.label is None]
    if unlabelled:
        raise InputError(unlabelled[0].source or config.data.path, "case has no label")
    if config.data.train_fraction_used < 1.0:
        splits["train"] = subsample_train(
            splits["train"], config.data.train_fraction_used, config.seed
        )
    return PreparedData(case_set=case_set, splits=splits, skipped=skipped)


def _group_weights(
    config: RunConfig, cases: Sequence[Case], labels: Sequence[int]
) -> np.ndarray | None:
    """``train.group_reweighting``: every (group, class) cell of the training cases drawn
    equally often; a case without the attribute joins the group ``(missing)``."""
    from medlens.train.sampler import cell_balanced_weights

    column = config.train.group_reweighting
    if column is None:
        return None
    if not any(column in c.attributes for c in cases):
        available = sorted({k for c in cases for k in c.attributes})
        raise ConfigError(
            "train.group_reweighting",
            f"no training case has the attribute {column!r} "
            f"(attributes: {', '.join(available) or 'none'}; list it in data.subgroup_columns)",
        )
    groups = [str(c.attributes.get(column, "(missing)")) for c in cases]
    return cell_balanced_weights(groups, labels)


class _TrainTransform:
    """Deterministic preprocessing followed by the random augmentations (picklable)."""

    def __init__(self, preprocess: Any, augment: Any | None) -> None:
        self.preprocess = preprocess
        self.augment = augment

    def __call__(self, image: Image, rng: np.random.Generator) -> Image:
        image = self.preprocess(image)
        return self.augment(image, rng) if self.augment is not None else image


def _cached_datasets(
    config: RunConfig, data: PreparedData, preprocess: Any, augment: Any | None
) -> dict[str, Any]:
    """``data.cache``: the splits as ``CachedDataset`` (the same items; preprocessing once).

    Disk caches live in ``<output_dir>/.cache/<key>``; a memory cache is filled here when
    DataLoader workers are used, so that every worker inherits it.
    """
    from medlens.data.cache import CachedDataset, source_fingerprint

    source_key = f"{config.data.format}:{config.data.layout}:{source_fingerprint(config.data.path)}"
    datasets = {}
    for name in SPLITS:
        dataset = CachedDataset(
            data.case_set,
            data.splits[name],
            preprocess,
            augment if name == "train" else None,
            seed=config.seed,
            mode=config.data.cache,  # type: ignore[arg-type]
            cache_dir=config.output_dir / ".cache",
            source_key=source_key,
        )
        if config.data.cache == "memory" and config.train.num_workers > 0:
            dataset.warm()
        datasets[name] = dataset
    return datasets


def _collate(
    batch: list[tuple[torch.Tensor, int, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack a batch; images of different shapes get one clear error instead of torch's."""
    shapes = {tuple(x.shape) for x, _, _ in batch}
    if len(shapes) > 1:
        raise InputError(
            "<batch>",
            f"preprocessed images differ in shape {sorted(shapes)}; add a resize (or crop_or_pad) "
            "to the config's preprocess list",
        )
    xs, ys, idx = zip(*batch, strict=True)
    return torch.stack(xs), torch.as_tensor(ys), torch.as_tensor(idx)


def _loader(dataset: Any, batch_size: int, workers: int, sampler: Any = None) -> DataLoader:
    # Workers are not persistent: a fresh copy of the dataset each epoch sees set_epoch(),
    # so each epoch draws new augmentations.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )


def _device(dist: DistContext) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def _stage_dir(config: RunConfig) -> Path:
    return config.output_dir / f"{config.name}.partial"


def train_from_config(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Train, choose the threshold on validation, evaluate val and test once, write the run.

    ``finalize(stage_dir)`` runs on the complete folder just before it is renamed into
    place; later phases (the report) hook in there without train/ importing them.

    Returns:
        The finished run folder ``<output_dir>/<name>``.
    """
    from medlens.data.dataset import CaseDataset
    from medlens.models import create_model
    from medlens.models.finetune import configure_finetuning, set_frozen_bn_eval
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs

    dist = init_distributed()
    final_dir = config.run_dir()
    stage = _stage_dir(config)
    if final_dir.exists() and not overwrite:
        raise ConfigError(
            "name", f"run folder {final_dir} already exists (use --overwrite or another name)"
        )
    seed_everything(config.seed)
    data = prepare_data(config)
    if stage.exists() and not resume and dist.is_main:
        shutil.rmtree(stage)
    barrier(dist)
    stage.mkdir(parents=True, exist_ok=True)
    class_names = list(data.case_set.class_names)
    num_classes = len(class_names)

    first = data.case_set.load(data.splits["train"][0])
    preprocess = build_pipeline(preprocess_specs(config.preprocess, first))
    augment = build_pipeline(config.augment, section="augment") if config.augment else None
    sample = preprocess(first)
    spatial_dims = sample.spatial_dims
    in_channels = sample.num_channels
    input_size = int(min(sample.spatial_shape))

    datasets = {
        "train": CaseDataset(
            data.case_set,
            data.splits["train"],
            _TrainTransform(preprocess, augment),
            seed=config.seed,
        ),
        "val": CaseDataset(
            data.case_set, data.splits["val"], _TrainTransform(preprocess, None), seed=config.seed
        ),
        "test": CaseDataset(
            data.case_set, data.splits["test"], _TrainTransform(preprocess, None), seed=config.seed
        ),
    }
    if config.data.cache != "none":
        datasets = _cached_datasets(config, data, preprocess, augment)
    train_labels = [int(c.label) for c in data.splits["train"]]  # type: ignore[arg-type]
    sampler = EpochSampler(
        train_labels,
        seed=config.seed,
        balanced=config.train.imbalance == "balanced_sampler",
        rank=dist.rank,
        world_size=dist.world_size,
        weights=_group_weights(config, data.splits["train"], train_labels),
    )
    tcfg = config.train
    loaders = {
        "train": _loader(datasets["train"], tcfg.batch_size, tcfg.num_workers, sampler),
        "val": _loader(datasets["val"], tcfg.batch_size * 2, tcfg.num_workers),
        "test": _loader(datasets["test"], tcfg.batch_size * 2, tcfg.num_workers),
    }

    torch.manual_seed(config.seed)
    model = create_model(
        config.model.name,
        in_channels=in_channels,
        num_classes=num_classes,
        spatial_dims=spatial_dims,
        pretrained=config.model.pretrained,
        init=config.model.init,
        input_size=input_size,
        cifar_stem=config.model.cifar_stem,
        dropout=config.model.dropout,
        channels=config.model.channels,  # refused by the factory for classifiers
        deep_supervision=config.model.deep_supervision,
    )
    device = _device(dist)
    model.to(device)
    param_groups = configure_finetuning(
        model,
        strategy=config.model.strategy,
        freeze_stages=config.model.freeze_stages,
        lr=tcfg.lr,
        backbone_lr_scale=config.model.backbone_lr_scale,
    )
    train_model: torch.nn.Module = model
    if dist.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None
        )
    weights = (
        inverse_frequency_weights(train_labels, num_classes)
        if tcfg.imbalance == "weighted_loss"
        else None
    )
    trainer = Trainer(
        train_model,
        param_groups,
        loaders["train"],
        ClassificationTask(classification_loss(weights, tcfg.label_smoothing), loaders["val"]),
        tcfg,
        device,
        checkpoint_dir=stage,
        dist_ctx=dist,
        callbacks=callbacks,
        progress=progress,
        on_epoch_start=set_frozen_bn_eval,  # a no-op when nothing is frozen
        fingerprint=hashlib.sha256(config.to_yaml().encode()).hexdigest(),
    )
    fit = trainer.fit(resume=resume)
    barrier(dist)
    if not dist.is_main:
        return final_dir

    model.load_state_dict(fit.best_state)
    outputs = {
        name: predict_probs(model, loaders[name], device, tta_flip=tcfg.tta_flip)
        for name in ("val", "test")
    }
    _write_run(
        config, stage, data, model, preprocess, fit, outputs, class_names, sample.array.shape
    )
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir


def data_summary(config: RunConfig, data: PreparedData, class_names: list[str]) -> dict[str, Any]:
    """``data_summary.json``: cases and class counts per split, the source, the skipped files."""
    splits = {
        name: {
            "n": len(cases),
            "class_counts": {
                cn: sum(1 for c in cases if c.label == k) for k, cn in enumerate(class_names)
            },
        }
        for name, cases in data.splits.items()
    }
    return {"splits": splits, "source": str(config.data.path), "skipped_files": data.skipped}


def _write_run(
    config: RunConfig,
    stage: Path,
    data: PreparedData,
    model: torch.nn.Module,
    preprocess: Any,
    fit: FitResult,
    outputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: list[str],
    input_shape: tuple[int, ...],
) -> None:
    from medlens.metrics import evaluate_predictions
    from medlens.metrics.threshold import choose_threshold, predict_labels
    from medlens.preprocess.pipeline import save_pipeline

    tcfg = config.train
    val_probs, val_labels, _ = outputs["val"]
    if len(class_names) == 2:
        threshold = float(
            choose_threshold(val_labels, val_probs[:, 1], tcfg.threshold, tcfg.fixed_threshold)
        )
    else:
        threshold = 0.5
    method = tcfg.threshold if len(class_names) == 2 else "argmax"

    split_metrics = {}
    rows = []
    for name in ("val", "test"):
        probs, labels, idx = outputs[name]
        split_metrics[name] = evaluate_predictions(
            labels,
            probs,
            class_names,
            threshold,
            n_bootstrap=config.evaluate.n_bootstrap,
            ci_level=config.evaluate.ci_level,
            seed=config.seed,
        )
        preds = predict_labels(probs, threshold)
        cases = data.splits[name]
        for k, i in enumerate(idx):
            case = cases[int(i)]
            row: dict[str, Any] = {"case_id": case.case_id, "split": name, "label": int(labels[k])}
            for c, cname in enumerate(class_names):
                row[f"prob_{cname}"] = float(probs[k, c])
            row["pred"] = int(preds[k])
            if case.patient_id and case.patient_id != case.case_id:
                row["patient_id"] = case.patient_id
            row.update(dict(case.attributes))
            rows.append(row)

    write_atomic(stage / "config.yaml", config.to_yaml())
    save_pipeline(preprocess, stage / "preprocessing.json")
    write_json_atomic(
        stage / "labels.json",
        {"class_names": class_names, "threshold": threshold, "threshold_method": method},
    )
    write_json_atomic(
        stage / "metrics.json",
        {
            "task": "classification",
            "class_names": class_names,
            "threshold": threshold,
            "threshold_method": method,
            "splits": split_metrics,
            "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history),
            "planned_epochs": fit.planned_epochs,
            "train_seconds": fit.train_seconds,
        },
    )
    pd.DataFrame(rows).to_csv(stage / "predictions.csv", index=False)
    pd.DataFrame(fit.history).to_csv(stage / "history.csv", index=False)
    write_json_atomic(stage / "data_summary.json", data_summary(config, data, class_names))
    save_checkpoint(
        {
            "model": model.state_dict(),
            "model_config": getattr(model, "config", {}),
            "class_names": class_names,
            "threshold": threshold,
            "best_epoch": fit.best_epoch,
            "input_shape": list(input_shape),
            "medlens_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        stage / "model.pt",
    )
