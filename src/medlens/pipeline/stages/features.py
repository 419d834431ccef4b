"""The features stage: radiomics-style features inside each named region of a case's label
map (per channel), and deep features of its crop, as one row per case.

A region that is empty in a case's map (the segmenter found no nucleus) has no features: its
row holds NaN there, the classify stage fills them with the training medians, and the case is
marked ``empty_regions`` in ``predictions.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlens.data.image import Image
from medlens.features.handcrafted import handcrafted_features
from medlens.pipeline.cells import CellCase
from medlens.pipeline.config import FeaturesStage
from medlens.pipeline.context import StageContext

FAMILIES_2D = ("firstorder", "shape", "glcm", "glrlm", "glszm")


@dataclass
class FeatureRows:
    """``values`` ``(N, D)`` float32 for the cases in order, the feature ``names``, and the
    regions each case lacked."""

    values: np.ndarray
    names: list[str]
    empty_regions: list[list[str]]


def region_values(ctx: StageContext, stage: FeaturesStage) -> dict[str, list[int]]:
    """Each named region's mask label values, checked against the data's regions.

    Raises:
        ConfigError: a region the masks do not hold (``stages.<name>.regions.<region>``).
    """
    return {
        name: [ctx.cells.region_label(r, f"stages.{stage.name}.regions.{name}") for r in parts]
        for name, parts in stage.regions.items()
    }


def handcrafted_rows(
    ctx: StageContext, stage: FeaturesStage, cases: list[CellCase], maps: dict[str, np.ndarray]
) -> FeatureRows:
    """Handcrafted features of every region and channel of each case."""
    from tqdm import tqdm

    spec = stage.handcrafted
    assert spec is not None
    values = region_values(ctx, stage)
    families = tuple(spec.families or FAMILIES_2D)
    rows: list[dict[str, float]] = []
    empties: list[list[str]] = []
    names: list[str] | None = None
    for case in tqdm(cases, desc=f"{stage.name}: features", disable=not ctx.progress):
        image = ctx.image(case)
        channels = spec.channels if spec.channels is not None else range(image.num_channels)
        row: dict[str, float] = {}
        empty: list[str] = []
        for region, labels in values.items():
            mask = np.isin(maps[case.case_id], labels)
            for channel in channels:
                if not mask.any():
                    continue
                feats = handcrafted_features(
                    image, mask, bins=spec.bins, channel=channel, families=families
                )
                row.update({f"{region}/c{channel}/{k}": v for k, v in feats.items()})
            if not mask.any():
                empty.append(region)
        if names is None and not empty:
            names = list(row)
        rows.append(row)
        empties.append(empty)
    if names is None:  # every case lacked a region: take the names from a reference map
        names = _names_from_reference(ctx, stage, cases[0], families)
    matrix = np.array(
        [[r.get(n, np.nan) for n in names] for r in rows],
        dtype=np.float32,
    ).reshape(len(rows), len(names))
    return FeatureRows(matrix, names, empties)


def _names_from_reference(
    ctx: StageContext, stage: FeaturesStage, case: CellCase, families: tuple[str, ...]
) -> list[str]:
    single = FeaturesStage(
        kind="features", name=stage.name, masks=stage.masks, regions=stage.regions,
        handcrafted=stage.handcrafted,
    )  # fmt: skip
    rows = handcrafted_rows(ctx, single, [case], {case.case_id: ctx.regions(case)})
    return rows.names


def deep_rows(ctx: StageContext, stage: FeaturesStage, crops: list[Image]) -> FeatureRows:
    """Pooled penultimate activations of the stage's backbone on each crop (ImageNet weights
    or a seeded random initialisation), after the default preprocessing of the first crop."""
    from medlens.features.deep import extract_deep_features
    from medlens.models import create_model
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs

    spec = stage.deep
    assert spec is not None
    pipeline = build_pipeline(preprocess_specs([], crops[0]))
    arrays = [pipeline(c).array.astype(np.float32) for c in crops]
    torch.manual_seed(ctx.seed)
    model = create_model(
        spec.backbone,
        in_channels=arrays[0].shape[0],
        num_classes=len(ctx.cells.class_names),
        spatial_dims=2,
        pretrained=spec.pretrained,
        input_size=int(min(arrays[0].shape[1:])),
    )
    values = extract_deep_features(model, arrays, progress=ctx.progress)
    names = [f"deep/{spec.backbone}/{i:04d}" for i in range(values.shape[1])]
    return FeatureRows(values, names, [[] for _ in crops])


def join(parts: list[FeatureRows]) -> FeatureRows:
    """Side-by-side rows of the same cases."""
    return FeatureRows(
        np.concatenate([p.values for p in parts], axis=1),
        [n for p in parts for n in p.names],
        [sum((p.empty_regions[i] for p in parts), []) for i in range(len(parts[0].empty_regions))],
    )


def save_features(path: Path, case_ids: list[str], rows: FeatureRows) -> None:
    """``features.csv``: one row per case (``case_id``, ``empty_regions``, every feature);
    rows of cases already in the file are replaced."""
    import pandas as pd

    from medlens.io_utils import write_atomic

    table = pd.DataFrame(rows.values, columns=rows.names)
    table.insert(0, "empty_regions", [";".join(e) for e in rows.empty_regions])
    table.insert(0, "case_id", case_ids)
    if path.is_file():
        old = pd.read_csv(path, dtype={"case_id": str, "empty_regions": str}, keep_default_na=False)
        table = pd.concat([old[~old["case_id"].isin(case_ids)], table])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, table.sort_values("case_id").to_csv(index=False))
