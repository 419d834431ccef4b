"""The feature matrix of a classical run: one row per case of each split, from the config's
``features`` section (handcrafted, or deep from a model name or a finished run folder).

A run-folder backbone must not have seen the cases this run validates or tests on: its
``predictions.csv`` is checked, and the run refused when its training split may hold them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.config import FeaturesConfig, RunConfig
from medlens.data.case import Case, CaseSet
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.run_folder import layout


@dataclass
class CaseFeatures:
    """Features of the cases of every split.

    Attributes:
        matrices: split name -> float32 ``(N, D)``, rows in the order of that split's cases.
        names: the ``D`` feature names.
        preprocess: the deterministic pipeline applied before extraction (``Compose``).
        meta: JSON-ready provenance (extractor, backbone, preprocessing, seconds).
    """

    matrices: dict[str, np.ndarray]
    names: list[str]
    preprocess: Any
    meta: dict[str, Any] = field(default_factory=dict)


def _per_split(
    splits: Mapping[str, Sequence[Case]], extract: Callable[[list[Case]], np.ndarray]
) -> dict[str, np.ndarray]:
    """One extraction over every case (one progress bar), cut back into the splits."""
    order = list(splits)
    matrix = extract([c for name in order for c in splits[name]])
    out, start = {}, 0
    for name in order:
        out[name] = matrix[start : start + len(splits[name])]
        start += len(splits[name])
    return out


def _handcrafted(
    features: FeaturesConfig,
    config: RunConfig,
    case_set: CaseSet,
    splits: Mapping[str, Sequence[Case]],
    progress: bool,
) -> CaseFeatures:
    from medlens.features import FAMILIES, handcrafted_feature_matrix
    from medlens.preprocess.pipeline import build_pipeline

    pipeline = build_pipeline(config.preprocess)
    names: list[str] = []

    def extract(cases: list[Case]) -> np.ndarray:
        images = (pipeline(case_set.load(c)) for c in cases)
        matrix, found = handcrafted_feature_matrix(
            images, progress=progress, bins=features.bins, families=features.families or FAMILIES
        )
        names.extend(found)
        return matrix

    matrices = _per_split(splits, extract)
    meta = {"extractor": "handcrafted", "bins": features.bins}
    meta["families"] = list(features.families or FAMILIES)
    return CaseFeatures(matrices, names, pipeline, meta)


def _model_backbone(
    features: FeaturesConfig,
    config: RunConfig,
    case_set: CaseSet,
    splits: Mapping[str, Sequence[Case]],
    progress: bool,
) -> CaseFeatures:
    import torch

    from medlens.data.validation import require_finite
    from medlens.features import extract_deep_features
    from medlens.features.cases import PreparedCases
    from medlens.models import create_model
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs

    first = case_set.load(next(c for cases in splits.values() for c in cases))
    pipeline = build_pipeline(preprocess_specs(config.preprocess, first))
    sample = pipeline(first)

    def prepare(image: Image) -> np.ndarray:
        array = pipeline(image).array
        require_finite(np.asarray(array), image.source, "values after preprocessing")
        return array

    torch.manual_seed(config.seed)
    model = create_model(
        str(features.backbone),
        in_channels=sample.num_channels,
        num_classes=len(case_set.class_names),
        spatial_dims=sample.spatial_dims,
        pretrained=features.pretrained,
        input_size=int(min(sample.spatial_shape)),
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def extract(cases: list[Case]) -> np.ndarray:
        dataset = PreparedCases(case_set, cases, prepare)
        return extract_deep_features(model, dataset, features.batch_size, device, progress)

    matrices = _per_split(splits, extract)
    names = [f"deep_{i:04d}" for i in range(next(iter(matrices.values())).shape[1])]
    meta: dict[str, Any] = {
        "extractor": "deep",
        "backbone": features.backbone,
        "pretrained": features.pretrained,
        "model_config": dict(getattr(model, "config", {})),
    }
    return CaseFeatures(matrices, names, pipeline, meta)


def check_backbone_unseen(
    backbone: Path, config: RunConfig, splits: Mapping[str, Sequence[Case]]
) -> str:
    """Refuse a backbone run that may have trained on (or chosen with) this run's cases.

    The backbone's ``predictions.csv`` lists its validation and test cases; every other case
    of its source may have been a training case. This run's test cases must all be backbone
    test cases, and its validation cases must be backbone validation or test cases.

    Returns:
        What was checked, in one sentence (recorded in ``features.json``).

    Raises:
        ConfigError: keyed ``features.backbone``, naming the run and an offending case.
    """
    import yaml

    raw = yaml.safe_load((backbone / layout.CONFIG).read_text(encoding="utf-8")) or {}
    source = Path(str((raw.get("data") or {}).get("path", "")))
    if source.resolve() != Path(config.data.path).resolve():
        return f"not checked: the backbone was trained on another source ({source})"
    path = backbone / layout.PREDICTIONS
    if not path.is_file():
        raise InputError(path, "predictions.csv not found; the backbone run folder is incomplete")
    table = pd.read_csv(path, dtype={"case_id": str, "split": str})
    seen = {
        "test": set(table.loc[table["split"] == "test", "case_id"]),
        "val": set(table.loc[table["split"].isin(["val", "test"]), "case_id"]),
    }
    for split, allowed in seen.items():
        leaked = [c.case_id for c in splits.get(split, ()) if c.case_id not in allowed]
        if leaked:
            role = "training or validation" if split == "test" else "training"
            raise ConfigError(
                "features.backbone",
                f"the backbone run {backbone} may have used {len(leaked)} of this run's {split} "
                f"cases for {role} (e.g. {leaked[0]}); train the backbone on this run's "
                "training split (same data, split and fold), or use a model name",
            )
    return "checked: every validation and test case was outside the backbone's training split"


def _run_backbone(
    features: FeaturesConfig,
    config: RunConfig,
    case_set: CaseSet,
    splits: Mapping[str, Sequence[Case]],
    progress: bool,
) -> CaseFeatures:
    from medlens.features import extract_deep_features
    from medlens.features.cases import PreparedCases
    from medlens.inference.loaded_run import load_run, prepare_input

    backbone = Path(str(features.backbone))
    if config.preprocess:
        raise ConfigError(
            "preprocess",
            "a run-folder backbone applies its own preprocessing.json; leave preprocess empty",
        )
    if features.pretrained:
        raise ConfigError("features.pretrained", "a run-folder backbone has its trained weights")
    check = check_backbone_unseen(backbone, config, splits)
    run = load_run(backbone)
    if list(run.class_names) != list(case_set.class_names):
        raise ConfigError(
            "features.backbone",
            f"the backbone run {backbone} has classes {run.class_names}, this data "
            f"{list(case_set.class_names)}",
        )

    def extract(cases: list[Case]) -> np.ndarray:
        dataset = PreparedCases(case_set, cases, lambda image: prepare_input(run, image))
        return extract_deep_features(run.model, dataset, features.batch_size, run.device, progress)

    matrices = _per_split(splits, extract)
    names = [f"deep_{i:04d}" for i in range(next(iter(matrices.values())).shape[1])]
    meta: dict[str, Any] = {
        "extractor": "deep",
        "backbone": str(backbone),
        "backbone_split_check": check,
        "model_config": dict(getattr(run.model, "config", {})),
    }
    return CaseFeatures(matrices, names, run.preprocess, meta)


def run_features(
    config: RunConfig,
    case_set: CaseSet,
    splits: Mapping[str, Sequence[Case]],
    progress: bool = True,
) -> CaseFeatures:
    """Features of the cases of ``splits`` as the config's ``features`` section asks.

    ``features.backbone`` is a run folder when such a folder exists (relative to the working
    directory), otherwise a registered model name.

    Raises:
        ConfigError: no features section, a backbone that is neither a run folder nor a model
            name, or a run-folder backbone that saw this run's validation or test cases.
        InputError: unreadable images, or features with NaN/inf values.
    """
    from medlens.models import MODELS

    features = config.features
    if features is None:
        raise ConfigError("features", "a classical run needs a features section")
    if features.source == "handcrafted":
        return _handcrafted(features, config, case_set, splits, progress)
    backbone = str(features.backbone)
    if Path(backbone).is_dir():
        return _run_backbone(features, config, case_set, splits, progress)
    if backbone in MODELS:
        return _model_backbone(features, config, case_set, splits, progress)
    raise ConfigError(
        "features.backbone",
        f"{backbone!r} is neither a run folder nor a registered model ({', '.join(MODELS)})",
    )
