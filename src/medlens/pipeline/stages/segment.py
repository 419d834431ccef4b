"""The segment stage: region label maps of every case, from segmenters trained so that no
training case's map comes from a network that saw its reference mask (cross-fitting).

``crossfit.json`` in the stage folder records, for each of the ``crossfit_folds`` networks,
the cases it trained on and the cases whose maps it made; test and new cases get the mean of
all the networks' probabilities.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.io_utils import write_json_atomic
from medlens.pipeline.cells import CellCase
from medlens.pipeline.config import SegmentStage
from medlens.pipeline.context import StageContext, child_config, train_child, write_png
from medlens.pipeline.folds import fold_indices, validation_carve
from medlens.run_folder.files import read_json

CROSSFIT = "crossfit.json"
Maps = dict[str, np.ndarray]


def _materialise(
    ctx: StageContext, folder: Path, cases: list[tuple[CellCase, str]],
    images: dict[str, Image] | None, maps: Maps | None,
) -> None:  # fmt: skip
    """``train/``, ``val/`` and ``test/`` folders of images and region masks (the "folder"
    layout); ``cases`` pairs each case with its split.

    Images are linked to their files, or written as PNG when they are crops (``images``);
    masks are the reference maps, or ``maps`` of the same crops. The test split (the cases
    this network predicts for later stages) is only scored by the network's own run, never
    trained on.
    """
    for case, split in cases:
        image_dir, mask_dir = folder / split / "images", folder / split / "masks"
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        if images is None:
            link = image_dir / f"{case.case_id}{case.image.suffix}"
            if not link.exists():
                os.symlink(case.image.resolve(), link)
            regions = ctx.regions(case)
        else:
            write_png(images[case.case_id].array, image_dir / f"{case.case_id}.png")
            assert maps is not None
            regions = maps[case.case_id]
        write_png(regions, mask_dir / f"{case.case_id}.png")


def fit_segment(
    ctx: StageContext, stage: SegmentStage, cases: list[CellCase],
    crops: dict[str, Image] | None = None, crop_maps: Maps | None = None,
) -> Maps:  # fmt: skip
    """Train the stage's segmenters on ``cases`` and return the cross-fitted maps of those
    same cases (each from the network that did not train on it).

    ``crops`` / ``crop_maps``: train on these crops and their reference maps instead of the
    whole images (a cascade's second stage); the returned maps are then on the crops.
    """
    if stage.source == "ground_truth":
        return crop_maps if crop_maps is not None else {c.case_id: ctx.regions(c) for c in cases}
    folder = ctx.stage_dir(stage.name)
    if stage.from_run is not None:  # trained outside: used as it is, not cross-fitted
        used: dict[str, Any] = {"networks": [{"run": str(stage.from_run.resolve()), "trained_on": None,
                                "predicted": [c.case_id for c in cases]}]}  # fmt: skip
        write_json_atomic(folder / CROSSFIT, used)
        run = _load(stage.from_run)
        return {
            c.case_id: _labels([run], crops[c.case_id] if crops is not None else ctx.image(c))
            for c in cases
        }
    labels = np.array([c.label for c in cases])
    k = min(stage.crossfit_folds, len(cases))
    held_out = fold_indices(labels, k, ctx.seed)
    record: dict[str, Any] = {"networks": []}
    maps: Maps = {}
    for j, predict_idx in enumerate(held_out):
        train_idx = np.setdiff1d(np.arange(len(cases)), predict_idx)
        train_cases = [cases[i] for i in train_idx]
        val = validation_carve(labels[train_idx], ctx.data.val_fraction, ctx.seed + j)
        data_dir = folder / "data" / f"crossfit{j}"
        splits = [(c, "val" if v else "train") for c, v in zip(train_cases, val, strict=True)]
        splits += [(cases[i], "test") for i in predict_idx]
        _materialise(ctx, data_dir, splits, crops, crop_maps)
        config = child_config(
            stage.name, stage.run, "segmentation",
            {"format": "segmentation", "layout": "folder", "path": str(data_dir),
             "class_names": ["background", *ctx.cells.regions]},
            f"crossfit{j}", folder, ctx.seed + j,
        )  # fmt: skip
        run_dir = train_child(ctx, config)
        run = _load(run_dir)
        for i in predict_idx:
            case = cases[i]
            image = crops[case.case_id] if crops is not None else ctx.image(case)
            maps[case.case_id] = _labels([run], image)
        record["networks"].append(
            {
                "run": run_dir.name,
                "trained_on": [c.case_id for c in train_cases],
                "predicted": [cases[i].case_id for i in predict_idx],
            }
        )
    write_json_atomic(folder / CROSSFIT, record)
    return maps


def segment_cases(
    ctx: StageContext, stage: SegmentStage, cases: list[CellCase],
    crops: dict[str, Image] | None = None, crop_maps: Maps | None = None,
) -> Maps:  # fmt: skip
    """Maps of new (test) cases: the mean probabilities of every cross-fit network (or the
    reference maps for ``source: ground_truth``)."""
    if stage.source == "ground_truth":
        if crop_maps is not None:
            return crop_maps
        return {c.case_id: ctx.regions(c) for c in cases}
    runs = load_networks(ctx.run_dir / "stages" / stage.name)
    return {
        c.case_id: _labels(runs, crops[c.case_id] if crops is not None else ctx.image(c))
        for c in cases
    }


def load_networks(folder: Path) -> list[Any]:
    """The loaded cross-fit segmenters of a stage folder.

    Raises:
        InputError: a stage folder without its ``crossfit.json`` or a network's run folder.
    """
    from medlens.inference.loaded_run import load_run

    record = read_json(folder / CROSSFIT, required=True)
    runs = []
    for entry in record["networks"]:
        run_dir = folder / entry["run"]
        if not run_dir.is_dir():
            raise InputError(run_dir, "the segmenter's run folder is missing")
        runs.append(load_run(run_dir))
    return runs


def _load(run_dir: Path) -> Any:
    from medlens.inference.loaded_run import load_run

    return load_run(run_dir)


def _labels(runs: list[Any], image: Image) -> np.ndarray:
    """The post-processed label map ``(H, W)`` of the mean probabilities of ``runs``."""
    from medlens.inference.postprocess import postprocess
    from medlens.inference.resample import resample_probabilities
    from medlens.inference.sliding_window import sliding_window_predict

    total: np.ndarray | None = None
    for run in runs:
        x = run.preprocess(image).array.astype(np.float32, copy=False)
        if not np.all(np.isfinite(x)):
            raise InputError(image.source, "image contains NaN or infinite values")
        scfg = run.config.segmentation
        probs = (
            sliding_window_predict(
                run.model,
                torch.from_numpy(np.ascontiguousarray(x)),
                roi_size=list(scfg.patch_size or x.shape[1:]),
                overlap=scfg.overlap,
                sw_batch_size=scfg.sw_batch_size,
                tta_flip=scfg.tta_flip,
                device=run.device,
            )[0]
            .cpu()
            .numpy()
        )
        probs = resample_probabilities(probs, image.spatial_shape)
        total = probs if total is None else total + probs
    assert total is not None
    post = runs[0].config.segmentation.postprocess.model_dump()
    labels = postprocess(total / len(runs), **post, spacing=image.spacing)
    return np.asarray(labels, dtype=np.uint8)


def save_maps(folder: Path, maps: Maps) -> None:
    """Each label map as ``<folder>/<case>.png`` (label values, not grey levels)."""
    for case_id, labels in maps.items():
        write_png(labels, folder / f"{case_id}.png")
