"""``medlens train`` for ``task: segmentation``: image + mask pairs in, a run folder out.

The deterministic preprocessing is applied once, jointly to image, mask and field of view;
training draws foreground-balanced patches with fresh augmentations each epoch; the epoch
with the best validation Dice (sliding-window, whole images) is kept; validation and test
images are then predicted once, post-processed, mapped back onto each image's own grid and
scored there, inside the field of view when there is one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medlens import __version__
from medlens.config import RunConfig
from medlens.data.case import Case
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.inference.resample import resample_probabilities
from medlens.run_folder import layout
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.train.seeding import seed_everything
from medlens.train.segmentation.task import PreparedCase, SegmentationTask
from medlens.train.trainer import EpochCallback, FitResult, Trainer

SPLITS = ("train", "val", "test")


def split_segmentation_cases(config: RunConfig, cases: Sequence[Case]) -> dict[str, list[Case]]:
    """Official train/test (validation carved from train), or a random split when asked for
    or when the source has none."""
    from medlens.data.splits import assign_splits, carve_validation

    dcfg = config.data
    cases = list(cases)
    has_official = any(c.split == "test" for c in cases) and any(c.split == "train" for c in cases)
    if dcfg.split == "official" and has_official:
        if not any(c.split == "val" for c in cases):
            cases = carve_validation(cases, dcfg.val_fraction, seed=config.seed)
    else:
        cases = assign_splits(cases, dcfg.val_fraction, dcfg.test_fraction, seed=config.seed)
    splits = {name: [c for c in cases if c.split == name] for name in SPLITS}
    for name in SPLITS:
        if not splits[name]:
            raise InputError(dcfg.path, f"the {name} split has no labelled image + mask pair")
    if dcfg.train_fraction_used < 1.0:
        keep = max(1, round(len(splits["train"]) * dcfg.train_fraction_used))
        rng = np.random.default_rng(config.seed)
        chosen = sorted(rng.choice(len(splits["train"]), size=keep, replace=False))
        splits["train"] = [splits["train"][i] for i in chosen]
    return splits


def prepare_case(source: Any, case: Case, preprocess: Any) -> PreparedCase:
    """Read a case's image, mask and field of view and preprocess them jointly."""
    from medlens.preprocess.joint import apply_joint

    image = source.load(case)
    mask = source.load_mask(case, image)
    roi = source.load_roi(case, image)
    if not np.isfinite(image.array).all():
        raise InputError(case.source or case.case_id, "image holds NaN or infinite values")
    p_image, p_mask, p_roi = apply_joint(preprocess, image, mask, roi)
    return PreparedCase(case.case_id, p_image, p_mask, p_roi, mask, roi, image)


def _check_patch_size(
    config: RunConfig, cases: Sequence[PreparedCase], model: Any
) -> list[int] | None:
    """The training patch (None: whole images), checked against the network's size rules."""
    from medlens.models.segmenter import check_input_size

    patch = config.segmentation.patch_size
    sample = cases[0].image
    if patch is None:
        shapes = {c.image.spatial_shape for c in cases}
        if len(shapes) > 1:
            raise ConfigError(
                "segmentation.patch_size",
                f"the images differ in shape ({len(shapes)} shapes); give a patch size",
            )
        size, key = list(next(iter(shapes))), "preprocess"
    else:
        if len(patch) != sample.spatial_dims:
            raise ConfigError(
                "segmentation.patch_size",
                f"gives {len(patch)} sizes for {sample.spatial_dims}D images",
            )
        size, key = list(patch), "segmentation.patch_size"
    try:
        check_input_size(model, (1, sample.num_channels, *size), source=key)
    except InputError as exc:
        raise ConfigError(key, exc.reason) from None
    return None if patch is None else list(patch)


def train_segmentation_from_config(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Train a segmenter, predict validation and test once, and write the run folder.

    Returns:
        The finished run folder ``<output_dir>/<name>``.
    """
    from medlens.data.segmentation import open_segmentation_source
    from medlens.data.segmentation_dataset import SegmentationDataset
    from medlens.models import create_model
    from medlens.models.memory_format import to_preferred_memory_format
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs
    from medlens.train.distributed import init_distributed
    from medlens.train.segmentation.calibration import check_segmentation_calibration
    from medlens.train.segmentation.losses import build_segmentation_loss

    check_segmentation_calibration(config)
    dist = init_distributed()
    if dist.enabled:
        raise ConfigError("task", "segmentation trains in one process; run it without torchrun")
    final_dir = config.run_dir()
    check_free(final_dir, overwrite)
    seed_everything(config.seed)
    source = open_segmentation_source(
        config.data.path, layout=config.data.layout, class_names=config.data.class_names
    )
    splits = split_segmentation_cases(config, source.cases)
    stage = open_stage(final_dir, resume=resume)
    class_names = list(source.class_names)
    num_classes = len(class_names)

    first = source.load(splits["train"][0])
    preprocess = build_pipeline(preprocess_specs(config.preprocess, first))
    augment = build_pipeline(config.augment, section="augment") if config.augment else None
    prepared = {
        name: [
            prepare_case(source, case, preprocess)
            for case in tqdm(cases, desc=f"read {name}", leave=False, disable=not progress)
        ]
        for name, cases in splits.items()
    }
    sample = prepared["train"][0].image
    torch.manual_seed(config.seed)
    model = create_model(
        config.model.name,
        in_channels=sample.num_channels,
        num_classes=num_classes,
        spatial_dims=sample.spatial_dims,
        pretrained=config.model.pretrained,  # refused by the factory: no segmenter has them
        init=config.model.init,
        dropout=config.model.dropout,
        channels=config.model.channels,
        deep_supervision=config.model.deep_supervision,
        stem_stride=config.model.stem_stride,  # refused by the factory: no segmenter has one
    )
    scfg = config.segmentation
    patch = _check_patch_size(config, prepared["train"], model)
    dataset = SegmentationDataset(
        [(c.image, c.mask, c.roi) for c in prepared["train"]],
        augment=augment,
        patch_size=patch,
        patches_per_image=scfg.patches_per_image if patch is not None else 1,
        foreground_fraction=scfg.foreground_fraction,
        seed=config.seed,
    )
    tcfg = config.train
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        dataset,
        batch_size=tcfg.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=tcfg.num_workers,
        drop_last=len(dataset) > tcfg.batch_size,
    )
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model.to(device)
    to_preferred_memory_format(model, device, "train")
    task = SegmentationTask(
        build_segmentation_loss(scfg.loss, num_classes),
        prepared["val"],
        num_classes,
        patch,
        scfg.overlap,
        scfg.sw_batch_size,
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
    fit = trainer.fit(resume=resume)
    model.load_state_dict(fit.best_state)
    _write_segmentation_run(
        config, stage, task, model, device, prepared, preprocess, fit, class_names, progress
    )
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir


def _write_segmentation_run(
    config: RunConfig,
    stage: Path,
    task: SegmentationTask,
    model: torch.nn.Module,
    device: torch.device,
    prepared: dict[str, list[PreparedCase]],
    preprocess: Any,
    fit: FitResult,
    class_names: list[str],
    progress: bool,
) -> None:
    from medlens.data.masks import write_mask
    from medlens.inference.postprocess import postprocess
    from medlens.metrics import evaluate_segmentation, summarize
    from medlens.train.segmentation.calibration import VoxelSample, fit_voxel_calibration

    scfg = config.segmentation
    post = scfg.postprocess
    rows: list[dict[str, Any]] = []
    voxels = VoxelSample(config.seed)
    suffix = {"png": ".png", "nifti": ".nii.gz"}.get(scfg.save_masks)
    for split in ("val", "test"):
        for case in tqdm(
            prepared[split], desc=f"predict {split}", leave=False, disable=not progress
        ):
            probs = resample_probabilities(
                task.predict(model, case, device, tta_flip=scfg.tta_flip),
                case.original.spatial_shape,
            )
            labels = postprocess(probs, **post.model_dump(), spacing=case.original.spacing)
            roi = None if case.original_roi is None else case.original_roi.array[0].astype(bool)
            if roi is not None:
                labels[~roi] = 0  # nothing is predicted outside the field of view
            voxels.add(split, probs, case.original_mask.array[0], roi)
            results = evaluate_segmentation(
                labels,
                case.original_mask.array[0],
                case.original.spacing,
                labels=list(range(1, len(class_names))),
                fov_mask=roi,
                tolerance_mm=scfg.surface_tolerance_mm,
                prob=probs,
            )
            for label, metrics in results.items():
                rows.append(
                    {
                        "case_id": case.case_id,
                        "split": split,
                        "class": class_names[label],
                        "label": label,
                        **metrics,
                    }
                )
            if suffix is not None and split == "test":
                safe = case.case_id.replace("/", "_").replace("\\", "_")
                mask_image = case.original.with_array(labels[None].astype(np.uint8))
                write_mask(
                    mask_image, stage / layout.MASKS / f"{safe}{suffix}", reference=case.original
                )
    table = pd.DataFrame(rows)
    metric_names = [
        c
        for c in table.columns
        if c not in ("case_id", "split", "class", "label", "pred_voxels", "ref_voxels")
    ]
    split_metrics: dict[str, Any] = {}
    for split, group in table.groupby("split"):
        split_metrics[str(split)] = {
            str(cls): {m: _json_safe(summarize(g[m].to_numpy(dtype=float))) for m in metric_names}
            for cls, g in group.groupby("class")
        }
    calibrator, trust = fit_voxel_calibration(config, voxels)
    writer = RunWriter(stage)
    writer.config(config)
    writer.preprocessing(preprocess)
    writer.labels(class_names, post.threshold, task=config.task, postprocess=post.model_dump())
    writer.json(layout.CALIBRATION, {**calibrator.to_dict(), "fitted_on": "val", "unit": "voxel"})
    writer.metrics(
        {
            "task": config.task,
            "class_names": class_names,
            "splits": split_metrics,
            "trust": trust,
            "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history),
            "planned_epochs": fit.planned_epochs,
            "train_seconds": fit.train_seconds,
            "distance_unit": distance_unit(
                [c.original for split in ("val", "test") for c in prepared[split]]
            ),
        }
    )
    writer.table(layout.SEGMENTATION_METRICS, table)
    writer.table(layout.HISTORY, fit.history)
    writer.json(
        layout.DATA_SUMMARY,
        {
            "splits": {name: {"n": len(cases)} for name, cases in prepared.items()},
            "source": str(config.data.path),
            "field_of_view": any(c.roi is not None for cases in prepared.values() for c in cases),
            "skipped_files": [],
        },
    )
    sample = prepared["train"][0].image
    writer.checkpoint(
        {
            "model": model.state_dict(),
            "model_config": getattr(model, "config", {}),
            "class_names": class_names,
            "threshold": post.threshold,
            "best_epoch": fit.best_epoch,
            "input_shape": [sample.num_channels] + [-1] * sample.spatial_dims,
            "task": config.task,
            "medlens_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )


#: ``Image.meta["format"]`` of the readers that take the spacing (mm) from the file.
_FORMATS_WITH_SPACING = {"nifti", "dicom", "dicom_seg"}


def spacing_from_file(image: Image) -> bool:
    """Whether ``image.spacing`` was read from its file (NIfTI header, DICOM pixel spacing)
    rather than assumed: 1.0 per axis for PNG, JPEG, TIFF, BMP, GIF (``meta["spacing_source"]
    == "assumed"``), ``.npy``, or a DICOM without ``PixelSpacing``."""
    meta = image.meta
    return (
        meta.get("spacing_source") != "assumed"
        and meta.get("spacing_known") is not False
        and str(meta.get("format", "")).lower() in _FORMATS_WITH_SPACING
    )


def distance_unit(images: Sequence[Image]) -> str:
    """``"mm"`` when every scored image's spacing came from its file, else ``"px"``: the unit
    of HD, HD95, ASSD and the surface Dice tolerance in metrics.json."""
    return "mm" if images and all(spacing_from_file(i) for i in images) else "px"


def _json_safe(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in stats.items()
    }
