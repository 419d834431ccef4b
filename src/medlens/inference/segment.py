"""``medlens predict`` for segmentation runs: images in, masks out (PNG, NIfTI or DICOM SEG).

Each input is preprocessed as in training, predicted with sliding windows (and flip TTA when
the run used it), mapped back onto the input's own grid, post-processed with the run's
settings and written next to a CSV that lists every input, its mask file, the voxels (and
mm² / mm³) of each class, and any error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic

MASK_FORMATS = ("auto", "png", "nifti", "dicom-seg")


def _mask_path(out_dir: Path, case_id: str, mask_format: str) -> Path:
    stem = Path(case_id).name
    for suffix in (".nii.gz", ".nii", ".dcm", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    ext = {"png": ".png", "nifti": ".nii.gz", "dicom-seg": ".dcm"}[mask_format]
    return out_dir / f"{stem or 'case'}{ext}"


def _resolved_format(mask_format: str, image: Image, is_series: bool) -> str:
    if mask_format == "auto":
        if is_series:
            return "dicom-seg"
        return "png" if image.spatial_dims == 2 else "nifti"
    if mask_format == "dicom-seg" and not is_series:
        raise InputError(image.source, "a DICOM SEG needs a DICOM series folder as input")
    if mask_format == "png" and image.spatial_dims != 2:
        raise InputError(image.source, "a volume's mask cannot be a PNG; use --mask-format nifti")
    return mask_format


def predict_mask(run: Any, image: Image) -> np.ndarray:
    """The post-processed label map ``(*spatial)`` of ``image``, on its own grid.

    When preprocessing keeps the image's grid, the label map is made slab by slab
    (``sliding_window_labels``: one byte per voxel, no probability map of the volume);
    otherwise float16 probabilities are resampled back onto the image's grid first.

    Raises:
        InputError: non-finite values, or an image the model cannot take.
    """
    from medlens.inference.postprocess import postprocess
    from medlens.inference.resample import resample_probabilities
    from medlens.inference.sliding_window import sliding_window_labels, sliding_window_predict

    x = run.preprocess(image).array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputError(image.source, "image contains NaN or infinite values")
    expected_channels = run.input_shape[0] if run.input_shape else x.shape[0]
    if x.shape[0] != expected_channels or (run.input_shape and len(run.input_shape) != x.ndim):
        raise InputError(
            image.source,
            f"after preprocessing the image is {tuple(x.shape)} (channels, *spatial), but the "
            f"model takes {expected_channels} channel(s) and {len(run.input_shape) - 1} "
            "spatial axes",
        )
    scfg = run.config.segmentation
    post = scfg.postprocess.model_dump()
    window = {
        "roi_size": list(scfg.patch_size or x.shape[1:]),
        "overlap": scfg.overlap,
        "sw_batch_size": scfg.sw_batch_size,
        "tta_flip": scfg.tta_flip,
        "device": run.device,
    }
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    if tuple(x.shape[1:]) == tuple(image.spatial_shape):
        labels = sliding_window_labels(run.model, tensor, threshold=post["threshold"], **window)
        return postprocess(labels[0].cpu().numpy(), **post, spacing=image.spacing)
    half = sliding_window_predict(run.model, tensor, out_dtype=torch.float16, **window)
    probs = resample_probabilities(half[0].cpu().numpy(), image.spatial_shape)
    return postprocess(probs, **post, spacing=image.spacing)


def _check_uncertainty(run: Any, method: str) -> None:
    from medlens.inference.uncertainty import check_mc_dropout, check_method

    check_method(method)
    if method == "ensemble":
        raise ConfigError(
            "--uncertainty",
            f"ensemble needs an ensemble run folder of 2+ members; {run.run_dir} is a single "
            "segmentation run (use tta or mc_dropout)",
        )
    if method == "mc_dropout":
        check_mc_dropout(run.model, run.run_dir)


def _uncertainty_columns(
    run: Any, image: Image, labels: np.ndarray, mask_path: Path, method: str
) -> dict[str, Any]:
    """Write the case's entropy and mutual-information maps next to its mask; return its
    summary columns."""
    from medlens.inference.segment_uncertainty import on_image_grid, sample_maps, write_map

    x = run.preprocess(image).array.astype(np.float32, copy=False)
    maps = on_image_grid(sample_maps(run, x, method), image)
    name = mask_path.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else mask_path.stem
    ext = ".png" if name.endswith(".png") else ".nii.gz"
    top = float(np.log(len(run.class_names)))
    entropy_path = write_map(maps.entropy, image, mask_path.with_name(f"{stem}_entropy{ext}"), top)
    mi_path = write_map(
        maps.mutual_information, image, mask_path.with_name(f"{stem}_mutual_information{ext}"), top
    )
    return {
        "uncertainty_method": method,
        **maps.summary(labels),
        "entropy_map": str(entropy_path),
        "mutual_information_map": str(mi_path),
    }


def segment_files(
    run_dir: Path,
    inputs: list[Path],
    out_dir: Path,
    mask_format: str = "auto",
    skip_bad: bool = False,
    progress: bool = True,
    uncertainty: str | None = None,
) -> tuple[int, int]:
    """Write one mask per input into ``out_dir`` and ``out_dir/segmentations.csv``.

    Args:
        run_dir: a finished segmentation run folder.
        inputs: images, NIfTI volumes, DICOM series folders, or folders of them.
        out_dir: where the masks go (created).
        mask_format: ``auto`` (DICOM SEG for a DICOM series, PNG for 2D, NIfTI for 3D),
            ``png``, ``nifti`` or ``dicom-seg``.
        skip_bad: record unreadable inputs in the CSV and go on, instead of stopping.
        progress: show a progress bar over the inputs.
        uncertainty: ``tta`` or ``mc_dropout``: also write ``<mask>_entropy`` and
            ``<mask>_mutual_information`` maps (16-bit PNG scaled to log K nats for 2D PNG
            masks, else float32 NIfTI in nats) and the per-case summary columns of
            ``medlens.inference.segment_uncertainty``.

    Returns:
        (masks written, inputs skipped).
    """
    from tqdm.auto import tqdm

    from medlens.data.dicom_seg import write_dicom_seg
    from medlens.data.masks import write_mask
    from medlens.inference.cost import CaseCost
    from medlens.inference.discovery import iter_input_cases
    from medlens.inference.loaded_run import load_run

    if mask_format not in MASK_FORMATS:
        raise ConfigError("--mask-format", f"must be one of {', '.join(MASK_FORMATS)}")
    run = load_run(run_dir)
    if not run.task.predicts_masks:
        raise InputError(run_dir, f"is a {run.task.name} run, which writes no masks")
    if uncertainty is not None:
        _check_uncertainty(run, uncertainty)
    volumes = run.input_shape is not None and len(run.input_shape) == 4
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    n_ok = n_bad = 0
    cases = list(iter_input_cases(list(inputs), volumes=volumes))
    for case_id, file, load in tqdm(cases, desc="segment", disable=not progress or len(cases) < 2):
        cost = CaseCost()
        try:
            with cost:
                image = load()
                is_series = Path(file).is_dir()
                fmt = _resolved_format(mask_format, image, is_series)
                labels = predict_mask(run, image)
                target = _mask_path(out_dir, case_id, fmt)
                if fmt == "dicom-seg":
                    write_dicom_seg(
                        image.with_array(labels[None].astype(np.uint8)),
                        Path(file),
                        list(run.class_names[1:]),
                        target,
                    )
                else:
                    write_mask(
                        image.with_array(labels[None].astype(np.uint8)), target, reference=image
                    )
                spread = (
                    _uncertainty_columns(run, image, labels, target, uncertainty)
                    if uncertainty is not None
                    else {}
                )
        except InputError as exc:
            if not skip_bad:
                raise
            rows.append({"case_id": case_id, "file": file, "mask": "", "error": exc.reason})
            n_bad += 1
            continue
        voxel_volume = float(np.prod(image.spacing))
        row: dict[str, Any] = {"case_id": case_id, "file": file, "mask": str(target)}
        for k, name in enumerate(run.class_names[1:], start=1):
            count = int(np.count_nonzero(labels == k))
            row[f"voxels_{name}"] = count
            row[f"size_{name}_mm{image.spatial_dims}"] = count * voxel_volume
        row.update(spread)
        row.update(cost.columns())
        row["error"] = ""
        rows.append(row)
        n_ok += 1
    write_atomic(out_dir / "segmentations.csv", pd.DataFrame(rows).to_csv(index=False))
    return n_ok, n_bad
