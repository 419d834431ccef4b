"""``medlens train`` for ``task: detection``: images with boxes (and instance masks) in, a
run folder out.

The source is opened and every object checked (``--skip-bad`` lists the bad ones); the
deterministic preprocessing is applied once, moving boxes and masks with the pixels; training
draws fresh augmentations each epoch; the epoch with the best validation mAP@0.5 is kept;
each class's operating threshold is chosen on validation; validation and test images are then
detected once, mapped back to each image's own pixels and scored there (test with bootstrap
CIs over images). Nothing is written before the data has been read and checked.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medlens import __version__
from medlens.config import RunConfig
from medlens.errors import ConfigError
from medlens.io_utils import write_atomic
from medlens.run_folder import layout
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.train.detection.data import PreparedImage
from medlens.train.seeding import seed_everything
from medlens.train.trainer import EpochCallback, FitResult


def build_detector(config: RunConfig, num_classes: int, in_channels: int) -> Any:
    """The configured detector (``model`` and ``detection`` sections)."""
    from medlens.models.detection import create_detector

    dcfg = config.detection
    return create_detector(
        config.model.name,
        num_classes=num_classes,
        in_channels=in_channels,
        backbone=config.model.backbone,
        pretrained=config.model.pretrained,
        init=config.model.init,
        anchor_sizes=dcfg.anchor_sizes,
        aspect_ratios=dcfg.aspect_ratios,
        fpn_channels=dcfg.fpn_channels,
        box_head_size=dcfg.box_head_size,
        proposals_train=dcfg.proposals_train,
        proposals_test=dcfg.proposals_test,
        roi_batch_size=dcfg.roi_batch_size,
        score_threshold=dcfg.score_threshold,
        nms_iou=dcfg.nms_iou,
        max_detections=dcfg.max_detections,
    )


def train_detection_from_config(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Train a detector, score validation and test once, and write the run folder.

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        ConfigError: a detector of another kind than the data (Mask R-CNN without masks), a
            class without training objects, or an existing run folder without ``overwrite``.
        InputError: an unreadable file or (without ``skip_bad``) a bad object, named.
    """
    from medlens.data.boxes import open_detection_source
    from medlens.models.detection.builders import family_of
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs
    from medlens.train.detection.data import (
        classes_without_training_objects,
        prepare_image,
        split_cases,
    )
    from medlens.train.distributed import init_distributed

    if init_distributed().enabled:
        raise ConfigError("task", "detection trains in one process; run it without torchrun")
    final_dir = config.run_dir()
    check_free(final_dir, overwrite)
    seed_everything(config.seed)
    dcfg = config.data
    source = open_detection_source(
        dcfg.path,
        dcfg.layout,
        dcfg.class_names,
        skip_bad=dcfg.skip_bad,
        path_column=dcfg.path_column,
        label_column=dcfg.label_column,
    )
    masks = family_of(config.model.name).masks
    if masks and not source.has_masks:
        raise ConfigError(
            "model.name",
            f"{config.model.name} learns instance masks; {dcfg.path} ({source.layout}) has boxes "
            "only (use COCO segmentations or images/ + masks/)",
        )
    splits = split_cases(config, source.cases)
    class_names = list(source.class_names)
    first = source.load(splits["train"][0])
    preprocess = build_pipeline(preprocess_specs(config.preprocess, first))
    augment = build_pipeline(config.augment, section="augment") if config.augment else None
    prepared = {
        name: [
            prepare_image(source, case, preprocess)
            for case in tqdm(cases, desc=f"read {name}", leave=False, disable=not progress)
        ]
        for name, cases in splits.items()
    }
    untrained = classes_without_training_objects(prepared["train"], class_names)
    if len(untrained) == len(class_names):
        raise ConfigError("data", f"the training images of {dcfg.path} hold no object at all")
    torch.manual_seed(config.seed)
    model = build_detector(config, len(class_names), prepared["train"][0].item.image.num_channels)
    stage = open_stage(final_dir, resume=resume)
    fit, task = _fit(config, model, prepared, augment, stage, callbacks, progress, resume)
    model.load_state_dict(fit.best_state)
    summary = _data_summary(config, prepared, source, untrained)
    _write_detection_run(
        config, stage, task, model, prepared, preprocess, fit, class_names, summary, masks
    )
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir


def _fit(
    config: RunConfig,
    model: Any,
    prepared: dict[str, list[PreparedImage]],
    augment: Any,
    stage: Path,
    callbacks: Sequence[EpochCallback],
    progress: bool,
    resume: bool,
) -> tuple[FitResult, Any]:
    from medlens.train.detection.data import DetectionDataset, collate
    from medlens.train.detection.task import DetectionTrainingTask
    from medlens.train.trainer import Trainer

    tcfg = config.train
    dataset = DetectionDataset(prepared["train"], augment, config.seed)
    loader = DataLoader(
        dataset,
        batch_size=tcfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        num_workers=tcfg.num_workers,
        collate_fn=collate,
        drop_last=len(dataset) > tcfg.batch_size,
    )
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model.to(device)
    task = DetectionTrainingTask(
        prepared["val"],
        model.num_classes,
        config.detection.max_detections,
        config.detection.mask_threshold,
    )
    trainer = Trainer(
        model,
        [{"params": [p for p in model.parameters() if p.requires_grad]}],
        loader,
        task,
        tcfg,
        device,
        checkpoint_dir=stage,
        callbacks=callbacks,
        progress=progress,
        fingerprint=hashlib.sha256(config.to_yaml().encode()).hexdigest(),
    )
    return trainer.fit(resume=resume), task


def _write_detection_run(
    config: RunConfig,
    stage: Path,
    task: Any,
    model: Any,
    prepared: dict[str, list[PreparedImage]],
    preprocess: Any,
    fit: FitResult,
    class_names: list[str],
    summary: dict[str, Any],
    masks: bool,
) -> None:
    from medlens.train.detection.results import (
        choose_thresholds,
        detection_document,
        detection_table,
        image_rows,
        score_split,
    )

    device = next(model.parameters()).device
    detections = {split: task.predict(model, device, prepared[split]) for split in ("val", "test")}
    thresholds = choose_thresholds(config, detections["val"], prepared["val"], len(class_names))
    scores, tables, images, counts = {}, [], [], []
    for split in ("val", "test"):
        n_bootstrap = config.evaluate.n_bootstrap if split == "test" else 0
        result = score_split(
            config, detections[split], prepared[split], class_names, thresholds, n_bootstrap, masks
        )
        counts += [{"split": split, **row} for row in result.pop("counts")]
        scores[split] = result
        tables += detection_table(split, detections[split], class_names, thresholds)
        images += image_rows(
            split,
            detections[split],
            prepared[split],
            thresholds,
            config.detection.match_iou,
            config.detection.max_detections,
        )
    writer = RunWriter(stage)
    writer.config(config)
    writer.preprocessing(preprocess)
    threshold_map = dict(zip(class_names, thresholds, strict=True))
    method = config.detection.threshold
    writer.labels(
        class_names, None, task=config.task, thresholds=threshold_map, threshold_method=method
    )
    writer.metrics(
        {
            "task": config.task,
            "class_names": class_names,
            "thresholds": threshold_map,
            "threshold_method": method,
            "splits": scores,
            "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history),
            "planned_epochs": fit.planned_epochs,
            "train_seconds": fit.train_seconds,
            "instance_masks": masks,
        }
    )
    writer.table(layout.DETECTIONS, tables)
    writer.table(layout.DETECTION_IMAGES, images)
    writer.table(layout.COUNTS, counts)
    writer.json(layout.DATA_SUMMARY, summary)
    write_atomic(
        writer.path(layout.DETECTIONS_JSON),
        detection_document(
            {s: (detections[s], prepared[s]) for s in ("val", "test")}, class_names, thresholds
        ),
    )
    writer.table(layout.HISTORY, fit.history)
    writer.checkpoint(
        {
            "model": model.state_dict(),
            "model_config": dict(model.config),
            "class_names": class_names,
            "thresholds": threshold_map,
            "best_epoch": fit.best_epoch,
            "task": config.task,
            "medlens_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )


def _data_summary(
    config: RunConfig, prepared: dict[str, list[PreparedImage]], source: Any, untrained: list[str]
) -> dict[str, Any]:
    """Images and objects per split and class; the objects left out; the classes without
    a training object."""
    splits = {}
    for name, images in prepared.items():
        splits[name] = {
            "n": len(images),
            "objects": source.object_counts([p.case for p in images]),
            "images_without_objects": sum(1 for p in images if not len(p.reference.labels)),
        }
    return {
        "splits": splits,
        "source": str(config.data.path),
        "layout": source.layout,
        "instance_masks": source.has_masks,
        "skipped_objects": [vars(b) for b in source.skipped],
        "classes_without_training_objects": untrained,
        "skipped_files": [],
    }
