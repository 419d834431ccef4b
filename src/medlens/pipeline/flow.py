"""The stages of a pipeline run in order, on training cases (fitting each stage on what the
earlier stages produced on cases they did not train on) and on new cases (applying the
fitted stages)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.pipeline.cells import CellCase
from medlens.pipeline.config import (
    ClassifyStage,
    CropStage,
    DetectStage,
    FeaturesStage,
    PipelineConfig,
    SegmentStage,
)
from medlens.pipeline.context import StageContext
from medlens.pipeline.stages.crop import (
    Crop,
    crop_labels,
    make_crop,
    paste_labels,
    region_box,
    save_crops,
)
from medlens.pipeline.stages.features import (
    FeatureRows,
    deep_rows,
    handcrafted_rows,
    join,
    save_features,
)


@contextmanager
def in_stage(name: str) -> Iterator[None]:
    """Bad input met inside a stage is reported with the stage's name and the file."""
    try:
        yield
    except InputError as exc:
        if exc.reason.startswith("stage "):
            raise
        raise InputError(exc.path, f"stage {name!r}: {exc.reason}") from None


@dataclass
class Outputs:
    """What each stage produced for a list of cases (keyed by stage name, then case id).

    ``maps``: region label maps on each image's grid (segment stages); ``boxes``: the found
    box ``(y0, x0, y1, x1)`` or None (detect stages); ``crops``; ``features``: rows in case
    order; ``probabilities``: ``(N, K)`` of the last (classify) stage.
    """

    cases: list[CellCase]
    maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    boxes: dict[str, dict[str, Any]] = field(default_factory=dict)
    crops: dict[str, dict[str, Crop]] = field(default_factory=dict)
    features: dict[str, FeatureRows] = field(default_factory=dict)
    probabilities: np.ndarray | None = None


def _crops_of(stage: CropStage, out: Outputs, ctx: StageContext) -> dict[str, Crop]:
    crops: dict[str, Crop] = {}
    for case in out.cases:
        image = ctx.image(case)
        if stage.input in out.boxes:
            box = out.boxes[stage.input][case.case_id]
        else:
            values = (
                [ctx.cells.region_label(r, f"stages.{stage.name}.regions") for r in stage.regions]
                if stage.regions
                else list(range(1, len(ctx.cells.regions) + 1))
            )
            box = region_box(out.maps[stage.input][case.case_id], values)
        crops[case.case_id] = make_crop(image, box, stage)
    return crops


def _segment_inputs(
    stage: SegmentStage, out: Outputs, ctx: StageContext, with_reference: bool
) -> tuple[dict[str, Any] | None, dict[str, np.ndarray] | None]:
    """The crops a cascade's segmenter reads, and their reference maps (when needed)."""
    if stage.input == "image":
        return None, None
    crops = out.crops[stage.input]
    images = {cid: c.image for cid, c in crops.items()}
    size = next(iter(crops.values())).image.array.shape[1:]
    maps = None
    if with_reference:
        maps = {c.case_id: crop_labels(ctx.regions(c), crops[c.case_id], size) for c in out.cases}
    return images, maps


def _on_image_grid(
    stage: SegmentStage, out: Outputs, ctx: StageContext, maps: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    if stage.input == "image":
        return maps
    crops = out.crops[stage.input]
    shapes = {c.case_id: ctx.image(c).array.shape[1:] for c in out.cases}
    return {cid: paste_labels(m, crops[cid], shapes[cid]) for cid, m in maps.items()}


def _save_features(ctx: StageContext, stage: FeaturesStage, out: Outputs) -> None:
    path = ctx.output_path(stage.name) / "features.csv"
    save_features(path, [c.case_id for c in out.cases], out.features[stage.name])


def _features(stage: FeaturesStage, out: Outputs, ctx: StageContext) -> FeatureRows:
    parts = []
    if stage.handcrafted is not None:
        assert stage.masks is not None
        parts.append(handcrafted_rows(ctx, stage, out.cases, out.maps[stage.masks]))
    if stage.deep is not None:
        crops = out.crops[stage.deep.crop]
        parts.append(deep_rows(ctx, stage, [crops[c.case_id].image for c in out.cases]))
    return join(parts)


def fit_and_test(
    ctx: StageContext, config: PipelineConfig, train: list[CellCase], test: list[CellCase]
) -> tuple[Outputs, Outputs]:
    """Fit every stage on the ``train`` cases in order, each on what the earlier stages
    produced on training cases they did not train on (cross-fitted maps and boxes), and apply
    it to the ``test`` cases before the next stage is fitted. Returns both cases' outputs."""

    fitted, tested = Outputs(train), Outputs(test)
    labels = np.array([c.label for c in train])
    for stage in config.stages:
        with in_stage(stage.name):
            _fit_stage(ctx, stage, fitted, tested, labels)
    return fitted, tested


def _fit_stage(
    ctx: StageContext, stage: Any, fitted: Outputs, tested: Outputs, labels: np.ndarray
) -> None:
    from medlens.pipeline.stages.classify import cnn_probabilities, fit_cnn, fit_estimator
    from medlens.pipeline.stages.detect import detect_cases, fit_detect, reference_boxes
    from medlens.pipeline.stages.segment import fit_segment, save_maps, segment_cases

    train, test = fitted.cases, tested.cases
    if isinstance(stage, SegmentStage):
        images, maps = _segment_inputs(stage, fitted, ctx, with_reference=True)
        test_images, test_maps = _segment_inputs(stage, tested, ctx, with_reference=True)
        found = fit_segment(ctx, stage, train, images, maps)
        fitted.maps[stage.name] = _on_image_grid(stage, fitted, ctx, found)
        found = segment_cases(ctx, stage, test, test_images, test_maps)
        tested.maps[stage.name] = _on_image_grid(stage, tested, ctx, found)
        if stage.source == "model":
            save_maps(
                ctx.mask_dir(stage.name), {**fitted.maps[stage.name], **tested.maps[stage.name]}
            )
    elif isinstance(stage, DetectStage):
        fitted.boxes[stage.name] = fit_detect(ctx, stage, train)
        tested.boxes[stage.name] = (
            reference_boxes(ctx, stage, test)
            if stage.source == "ground_truth"
            else detect_cases(ctx, stage, test)
        )
    elif isinstance(stage, CropStage):
        for out in (fitted, tested):
            out.crops[stage.name] = _crops_of(stage, out, ctx)
            save_crops(ctx.output_path(stage.name), out.crops[stage.name])
    elif isinstance(stage, FeaturesStage):
        for out in (fitted, tested):
            out.features[stage.name] = _features(stage, out, ctx)
            _save_features(ctx, stage, out)
    elif isinstance(stage, ClassifyStage):
        if stage.input in fitted.features:
            fit_estimator(ctx, stage, fitted.features[stage.input].values, labels)
            tested.probabilities = estimator_probabilities_of(ctx, stage, tested)
        else:
            train_images = _classify_images(stage, fitted, ctx)
            test_images = _classify_images(stage, tested, ctx)
            fit_cnn(ctx, stage, train, train_images, test, test_images)
            tested.probabilities = cnn_probabilities(
                ctx, stage, [test_images[c.case_id] for c in test]
            )


def estimator_probabilities_of(ctx: StageContext, stage: ClassifyStage, out: Outputs) -> np.ndarray:
    from medlens.pipeline.stages.classify import estimator_probabilities

    return estimator_probabilities(ctx, stage, out.features[stage.input].values)


def _classify_images(stage: ClassifyStage, out: Outputs, ctx: StageContext) -> dict[str, Any]:
    crops = out.crops.get(stage.input)
    if crops is not None:
        return {cid: c.image for cid, c in crops.items()}
    return {c.case_id: ctx.image(c) for c in out.cases}


def apply(
    ctx: StageContext, config: PipelineConfig, cases: list[CellCase], reference: bool = False
) -> Outputs:
    """Run the fitted stages on ``cases``. ``reference``: every segment and detect stage
    passes on the reference masks / boxes instead of its own (the upper bound)."""
    out = Outputs(cases)
    for stage in config.stages:
        with in_stage(stage.name):
            _apply_stage(ctx, stage, out, reference)
    return out


def _apply_stage(ctx: StageContext, stage: Any, out: Outputs, reference: bool) -> None:
    from medlens.pipeline.stages.classify import cnn_probabilities
    from medlens.pipeline.stages.detect import detect_cases, reference_boxes
    from medlens.pipeline.stages.segment import save_maps, segment_cases

    cases = out.cases
    if isinstance(stage, SegmentStage):
        if reference:
            out.maps[stage.name] = {c.case_id: ctx.regions(c) for c in cases}
            return
        images, maps = _segment_inputs(
            stage, out, ctx, with_reference=stage.source == "ground_truth"
        )
        found = segment_cases(ctx, stage, cases, images, maps)
        out.maps[stage.name] = _on_image_grid(stage, out, ctx, found)
        save_maps(ctx.mask_dir(stage.name), out.maps[stage.name])
    elif isinstance(stage, DetectStage):
        out.boxes[stage.name] = (
            reference_boxes(ctx, stage, cases)
            if reference or stage.source == "ground_truth"
            else detect_cases(ctx, stage, cases)
        )
    elif isinstance(stage, CropStage):
        out.crops[stage.name] = _crops_of(stage, out, ctx)
        if not reference:
            save_crops(ctx.output_path(stage.name), out.crops[stage.name])
    elif isinstance(stage, FeaturesStage):
        out.features[stage.name] = _features(stage, out, ctx)
        if not reference:
            _save_features(ctx, stage, out)
    elif isinstance(stage, ClassifyStage):
        if stage.input in out.features:
            out.probabilities = estimator_probabilities_of(ctx, stage, out)
        else:
            images = _classify_images(stage, out, ctx)
            out.probabilities = cnn_probabilities(ctx, stage, [images[c.case_id] for c in cases])


def uses_models_for_masks(config: PipelineConfig) -> bool:
    """Whether some segment or detect stage finds regions with a network (so a comparison
    with reference masks means something)."""
    return any(
        isinstance(s, SegmentStage | DetectStage) and s.source == "model" for s in config.stages
    )


def needs_masks(config: PipelineConfig) -> bool:
    """Whether any stage reads the data's masks (to train, to score, or as input)."""
    return any(isinstance(s, SegmentStage | DetectStage) for s in config.stages)
