"""Handcrafted features of many images, and of every case of a data source."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from medlens.config import DataConfig
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.features.cases import case_columns, open_cases
from medlens.features.feature_set import FeatureSet
from medlens.features.handcrafted import FAMILIES, handcrafted_features


def handcrafted_feature_matrix(
    images: Iterable[Image],
    masks: Iterable[np.ndarray | Image | None] | None = None,
    progress: bool = True,
    **options: Any,
) -> tuple[np.ndarray, list[str]]:
    """``handcrafted_features`` of each image stacked into ``(N, D)`` float32, with the names.

    Args:
        images: 2D or 3D images, all of one dimensionality.
        masks: one ROI per image (None entries: the whole image); default whole images.
        progress: show a tqdm progress bar.
        **options: ``bins``, ``bin_width``, ``distances``, ``channel``, ``families``.

    Raises:
        InputError: as ``handcrafted_features``, or images whose feature names differ
            (2D mixed with 3D).
    """
    rows: list[list[float]] = []
    names: list[str] | None = None
    mask_iter = iter(masks) if masks is not None else None
    for image in tqdm(images, desc="handcrafted features", disable=not progress):
        mask = next(mask_iter, None) if mask_iter is not None else None
        features = handcrafted_features(image, mask, **options)
        if names is None:
            names = list(features)
        elif list(features) != names:
            raise InputError(
                image.source or "<image>",
                f"is {image.spatial_dims}D; its features differ from the first image's",
            )
        rows.append(list(features.values()))
    if names is None:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.asarray(rows, dtype=np.float32), names


def handcrafted_features_from_data(
    data: DataConfig,
    preprocess: Sequence[Mapping[str, Any]] | None = None,
    splits: Sequence[str] | None = None,
    bins: int = 32,
    bin_width: float | None = None,
    distances: Sequence[int] = (1,),
    channel: int | None = None,
    families: Sequence[str] = FAMILIES,
    progress: bool = True,
) -> FeatureSet:
    """Handcrafted features of every case of ``data`` (whole-image ROI: data sources carry
    no masks), optionally after deterministic ``preprocess`` transforms.

    Without ``preprocess`` the features see the stored intensities (HU for CT), which is
    what radiomics wants; a resampling to isotropic spacing is a good preprocessing for 3D
    texture.
    """
    from medlens.preprocess.pipeline import build_pipeline

    case_set, cases, skipped = open_cases(data, splits)
    pipeline = build_pipeline([dict(s) for s in preprocess or ()])
    if not pipeline.is_deterministic:
        raise ConfigError("preprocess", "random transforms belong under augment, not preprocess")
    images = (pipeline(case_set.load(c)) for c in cases)
    options: dict[str, Any] = {
        "bins": bins,
        "bin_width": bin_width,
        "distances": tuple(int(d) for d in distances),
        "channel": channel,
        "families": tuple(families),
    }
    features, names = handcrafted_feature_matrix(images, progress=progress, **options)
    case_ids, labels, split_names = case_columns(cases)
    meta = {
        "extractor": "handcrafted",
        "data": str(data.path),
        "preprocess": pipeline.to_config(),
        "options": options,
        "skipped_files": skipped,
    }
    return FeatureSet(
        features, case_ids, labels, split_names, names, list(case_set.class_names), meta
    )
