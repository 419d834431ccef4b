"""``medlens train``: config in, self-contained run folder out.

The run is built in ``<output_dir>/<name>.partial/`` and renamed to ``<name>/`` only when
every file is written, so a killed run never looks finished; ``resume=True`` continues a
killed run from ``<name>.partial/last.pt``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medlens import __version__
from medlens.config import RunConfig
from medlens.data.case import Case
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.run_folder import layout
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.train.classification_results import (
    OodFeatures,
    check_trust_config,
    score_classification,
    write_classification_run,
)
from medlens.train.data import SPLITS, PreparedData, prepare_data
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
    from medlens.models.memory_format import to_preferred_memory_format
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs

    dist = init_distributed()
    final_dir = config.run_dir()
    check_free(final_dir, overwrite)
    seed_everything(config.seed)
    data = prepare_data(config)
    class_names = list(data.case_set.class_names)
    num_classes = len(class_names)
    check_trust_config(config, class_names, [int(c.label) for c in data.splits["val"]])
    stage = open_stage(final_dir, resume=resume, clear=dist.is_main)
    barrier(dist)

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
        channels=config.model.channels,  # refused by the factory where a model has none
        deep_supervision=config.model.deep_supervision,
        stem_stride=config.model.stem_stride,
    )
    device = _device(dist)
    model.to(device)
    to_preferred_memory_format(model, device, "train")
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
    ood = _ood_features(config, data, model, preprocess, datasets, outputs, device)
    _write_run(
        config, stage, data, model, preprocess, fit, outputs, class_names, sample.array.shape, ood
    )
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir


def _ood_features(
    config: RunConfig,
    data: PreparedData,
    model: torch.nn.Module,
    preprocess: Any,
    datasets: dict[str, Any],
    outputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    device: torch.device,
) -> OodFeatures | None:
    """The pooled penultimate features of the training cases (without augmentation; a
    seeded sample of at most ``ood.max_train_cases``), and of the validation and test cases
    in the order of ``outputs``."""
    from medlens.data.dataset import CaseDataset
    from medlens.features.deep import extract_deep_features

    if config.ood.score == "none":
        return None
    train_cases = list(data.splits["train"])
    if len(train_cases) > config.ood.max_train_cases:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(train_cases), config.ood.max_train_cases, replace=False))
        train_cases = [train_cases[int(i)] for i in keep]
    train_set = CaseDataset(
        data.case_set, train_cases, _TrainTransform(preprocess, None), seed=config.seed
    )
    batch = config.train.batch_size * 2

    def features(dataset: Any) -> np.ndarray:
        return extract_deep_features(model, dataset, batch, device, progress=False)

    return OodFeatures(
        train=features(train_set),
        train_labels=np.array([int(c.label) for c in train_cases]),  # type: ignore[arg-type]
        val=features(datasets["val"])[outputs["val"][2]],
        test=features(datasets["test"])[outputs["test"][2]],
    )


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
    ood: OodFeatures | None = None,
) -> None:
    # The loaders give (probs, labels, case index) in their own order.
    cases = {name: [data.splits[name][int(i)] for i in outputs[name][2]] for name in outputs}
    probs = {name: outputs[name][0] for name in outputs}
    results = score_classification(config, cases, probs, class_names, ood)
    writer = RunWriter(stage)
    write_classification_run(
        writer,
        config,
        data,
        results,
        preprocess,
        class_names,
        best_epoch=fit.best_epoch,
        epochs_run=len(fit.history),
        planned_epochs=fit.planned_epochs,
        train_seconds=fit.train_seconds,
    )
    writer.table(layout.HISTORY, fit.history)
    writer.checkpoint(
        {
            "model": model.state_dict(),
            "model_config": getattr(model, "config", {}),
            "class_names": class_names,
            "threshold": results.threshold,
            "best_epoch": fit.best_epoch,
            "input_shape": list(input_shape),
            "medlens_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
