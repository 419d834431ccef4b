"""The run config: YAML in, validated by pydantic, resolved YAML (every default) out.

No string in a config is ever evaluated. Unknown keys are errors, so a typo cannot be
silently ignored. This module stands at ground level: it imports nothing of medlens but its
errors. The checks that need transforms or estimators (``medlens.tasks.check_config``) stand
above them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medlens.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TransformSpec(_Strict):
    """One transform of a pipeline: a registered name and its keyword arguments."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(_Strict):
    """Where the cases come from and how they are split.

    ``format``: ``medmnist`` (an ``.npz`` with the official split keys), ``folder`` (one
    sub-folder per class), ``csv`` (a manifest with a path and a label column; paths may be
    images, DICOM files or folders of a series, NIfTI), ``dicom`` (a folder of DICOM files with
    the class read from a sub-folder name, like ``folder``), ``segmentation`` (image + mask
    pairs, for ``task: segmentation``, in the given ``layout``), ``pairs`` (a folder of images
    on one grid, with an optional ``labels/`` sub-folder of label maps with the same names, for
    ``task: registration``: pairs of them are registered), ``boxes`` (images with object
    boxes, and instance masks where the layout has them, for ``task: detection``).
    """

    format: Literal["medmnist", "folder", "csv", "dicom", "segmentation", "pairs", "boxes"] = (
        "medmnist"
    )
    layout: Literal["auto", "drive", "msd", "folder", "voc", "coco", "csv", "instance_masks"] = (
        Field(
            "auto",
            description="segmentation pairs: the DRIVE release, the Medical Segmentation Decathlon / "
            "nnU-Net imagesTr/labelsTr layout, or images/ + masks/ folders with matching names; "
            "boxes: Pascal VOC (Annotations/ + JPEGImages/), COCO JSON, a CSV of boxes (path, x1, "
            "y1, x2, y2, label), or images/ + masks/ instance masks",
        )
    )
    path: Path
    split: Literal["official", "random"] = "official"
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    path_column: str = "path"
    label_column: str = "label"
    patient_column: str | None = "patient_id"
    subgroup_columns: list[str] = Field(default_factory=list)
    class_names: list[str] | None = None
    train_fraction_used: float = Field(1.0, gt=0, le=1, description="stratified subsample of train")
    folds: int | None = Field(
        None, ge=2, description="k-fold: fold `fold` is the test split, val is carved from the rest"
    )
    fold: int = Field(0, ge=0)
    skip_bad: bool = False
    cache: Literal["none", "memory", "disk"] = Field(
        "none",
        description="keep the preprocessed images (memory, or memory-mapped files under "
        "<output_dir>/.cache) so preprocessing runs once; augmentation still runs every epoch",
    )


class ModelConfig(_Strict):
    name: str = "resnet18"
    pretrained: Literal["imagenet", "coco"] | None = None
    backbone: str | None = Field(
        None,
        description="detectors: the registered classifier whose stages feed the feature pyramid "
        "(None: the detector's own default); model.init may then be that classifier's run",
    )
    init: Path | None = None
    strategy: Literal["full", "linear_probe", "freeze", "discriminative"] = "full"
    freeze_stages: int = Field(0, ge=0)
    backbone_lr_scale: float = Field(0.1, gt=0, le=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    cifar_stem: bool | None = Field(None, description="None: automatic for inputs under 64 px")
    channels: list[int] | None = Field(
        None,
        min_length=1,
        description="U-Net-style segmenters: feature channels per level, at least 3 (None: "
        "16, 32, 64, 128); small_cnn: channels per convolution block (None: 32, 64)",
    )
    deep_supervision: bool = Field(
        False,
        description="unet_plus_plus: the loss is the mean over its four nested decoders' "
        "outputs during training (Zhou et al. 2018); inference uses the final one",
    )
    stem_stride: Literal[1, 2] = Field(
        1,
        description="small_cnn: 2 makes the first convolution stride 2 in place of the max pool "
        "after it (the same resolutions, about half the cost of a training step on 64^3 "
        "volumes); 1 keeps the pool",
    )


class TrainConfig(_Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    scheduler: Literal["cosine", "constant"] = "cosine"
    imbalance: Literal["weighted_loss", "balanced_sampler", "none"] = "weighted_loss"
    group_reweighting: str | None = Field(
        None,
        description="a subgroup column (data.subgroup_columns): draw training cases so every "
        "(group, class) cell weighs the same — a fairness mitigation",
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ema_half_life_epochs: float | None = Field(
        None,
        gt=0,
        description="an exponential moving average of the weights and BatchNorm statistics, "
        "updated after every step, whose weight halves every this many epochs; validation, "
        "the kept best epoch and everything after training use the averaged weights "
        "(None: off)",
    )
    early_stopping_patience: int | None = Field(10, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="wall-clock budget for training")
    threshold: Literal["youden_plateau", "youden", "max_f1", "fixed"] = Field(
        "youden_plateau",
        description="youden_plateau: the middle of the thresholds whose validation Youden J "
        "is within one standard error of the best (stable where J is flat); youden: the "
        "arg-max of J; max_f1; fixed (fixed_threshold)",
    )
    fixed_threshold: float = Field(0.5, gt=0, lt=1)
    num_workers: int = Field(0, ge=0)
    amp: bool = True
    tta_flip: bool = False


class PostprocessConfig(_Strict):
    """How predicted probabilities become a mask (segmentation).

    ``threshold`` applies to the foreground probability of binary tasks (argmax otherwise);
    ``keep_largest`` keeps the N largest connected components per class (None: all);
    ``fill_holes`` fills enclosed holes per class; ``min_size_mm`` removes objects smaller than
    this area (mm², 2D) or volume (mm³, 3D), using the voxel spacing.
    """

    threshold: float = Field(0.5, gt=0, lt=1)
    keep_largest: int | None = Field(None, ge=1)
    fill_holes: bool = False
    min_size_mm: float = Field(0.0, ge=0)


class SegmentationConfig(_Strict):
    """Patch training and sliding-window inference (``task: segmentation``).

    ``patch_size`` in voxels (None: whole images, which must then share one shape);
    ``foreground_fraction``: share of patches centred on a foreground voxel (nnU-Net's 0.33);
    ``loss``: dice_ce, dice, focal, tversky or dice_focal; ``overlap``: sliding-window overlap
    between neighbouring patches, as a fraction of the patch; ``tta_flip``: average the
    predictions over flips of every spatial axis; ``surface_tolerance_mm``: the tolerance of the
    normalised surface Dice.
    """

    patch_size: list[int] | None = Field(None, min_length=2, max_length=3)
    patches_per_image: int = Field(8, ge=1)
    foreground_fraction: float = Field(0.33, ge=0, le=1)
    loss: Literal["dice_ce", "dice", "focal", "tversky", "dice_focal"] = "dice_ce"
    overlap: float = Field(0.5, ge=0, lt=1)
    sw_batch_size: int = Field(4, ge=1)
    tta_flip: bool = False
    surface_tolerance_mm: float = Field(1.0, gt=0)
    save_masks: Literal["png", "nifti", "none"] = "png"
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)

    @field_validator("patch_size")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(v < 1 for v in value):
            raise ValueError("patch sizes must be positive voxel counts")
        return value


RegistrationStage = Literal["rigid", "affine", "deformable"]
REGISTRATION_STAGES: tuple[RegistrationStage, ...] = ("rigid", "affine", "deformable")


class RegistrationConfig(_Strict):
    """Image registration: ``medlens register`` and ``task: registration`` (learned).

    ``stages`` run in order (rigid -> affine -> deformable). ``init``: ``com`` aligns the
    intensity centres of mass first, ``geometry`` trusts the files' world coordinates (image
    centres for files without them). ``levels``: down-sampling factors of the
    multi-resolution pyramid, coarse to fine; ``linear_iterations`` / ``deformable_iterations``:
    optimiser steps per level. ``linear_loss`` / ``loss``: the similarity of the linear stages
    and of the deformable stage (``ncc`` local normalised cross-correlation in a window of
    ``ncc_kernel`` voxels, ``mi`` mutual information, ``mse``). ``regulariser`` (``diffusion``
    or ``bending``) weighs ``regulariser_weight`` against the similarity. ``diffeomorphic``:
    the deformable stage optimises a stationary velocity field integrated by scaling and
    squaring in ``integration_steps`` steps, on a grid at least 2 voxels apart. ``field_step``:
    the deformable stage's field lives on a grid this many voxels apart and is interpolated
    between (1: a vector per voxel).

    Learned runs (``task: registration``, ``model.name: voxelmorph``): ``atlas`` registers
    every image to one fixed image (otherwise ordered pairs of images within each split);
    ``pairs_per_epoch`` caps the training pairs drawn each epoch (seeded).
    """

    stages: list[RegistrationStage] = Field(
        default_factory=lambda: list(REGISTRATION_STAGES), min_length=1
    )
    init: Literal["com", "geometry"] = "com"
    levels: list[int] = Field(default_factory=lambda: [4, 2, 1], min_length=1)
    linear_iterations: list[int] = Field(default_factory=lambda: [100, 60, 0])
    deformable_iterations: list[int] = Field(default_factory=lambda: [100, 60, 20])
    linear_loss: Literal["ncc", "mi", "mse"] = "mi"
    loss: Literal["ncc", "mi", "mse"] = "ncc"
    ncc_kernel: int = Field(7, ge=3)
    regulariser: Literal["diffusion", "bending"] = "diffusion"
    regulariser_weight: float = Field(1.0, ge=0)
    diffeomorphic: bool = False
    integration_steps: int = Field(7, ge=1, le=12)
    linear_lr: float = Field(0.25, gt=0, description="voxels of the level per step, at first")
    deformable_lr: float = Field(0.5, gt=0, description="voxels of the level per step, at first")
    field_step: int = Field(1, ge=1)
    atlas: Path | None = None
    pairs_per_epoch: int | None = Field(None, ge=1)

    @field_validator("levels")
    @classmethod
    def _coarse_to_fine(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value) or value != sorted(value, reverse=True):
            raise ValueError("levels are down-sampling factors >= 1, coarse to fine (4, 2, 1)")
        return value

    @field_validator("ncc_kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("the window must have an odd number of voxels")
        return value

    @model_validator(mode="after")
    def _one_count_per_level(self) -> RegistrationConfig:
        for key in ("linear_iterations", "deformable_iterations"):
            counts = getattr(self, key)
            if len(counts) != len(self.levels) or any(c < 0 for c in counts):
                raise ValueError(
                    f"{key} needs one count >= 0 per level ({len(self.levels)} levels)"
                )
        order = list(REGISTRATION_STAGES)
        if [order.index(s) for s in self.stages] != sorted(
            order.index(s) for s in set(self.stages)
        ):
            raise ValueError("stages run once each, in the order rigid, affine, deformable")
        return self


class DetectionConfig(_Strict):
    """Detectors and instance segmenters (``task: detection``).

    Sizes are in pixels of the network input, i.e. after ``preprocess`` (which sets the working
    scale, e.g. ``fit_size``); boxes are mapped back to each image's own pixels for scoring.
    ``anchor_sizes``: one anchor size per pyramid level, finest first (None: the detector's
    default, 32 to 512); ``aspect_ratios``: anchor height / width; ``fpn_channels``: feature
    pyramid width; ``box_head_size``: width of the R-CNN box head's two layers;
    ``proposals_train`` / ``proposals_test``: region proposals kept per image after NMS;
    ``roi_batch_size``: proposals sampled per image to train the R-CNN heads;
    ``score_threshold``: detections scoring lower are dropped (keep it low: AP ranks them all);
    ``nms_iou``: overlap at which the lower-scoring of two same-class boxes is suppressed;
    ``max_detections``: per image; ``threshold``: the score from which a detection is a finding
    (F1, counts, overlays, ``medlens predict``): ``max_f1`` chooses one per class on
    validation, ``fixed`` uses ``fixed_threshold``; ``match_iou``: the IoU at which a detection
    matches a reference object for F1, FROC and counts; ``froc_fps``: false positives per image
    at which FROC sensitivity is read; ``mask_threshold``: an instance mask is its probability
    above this.
    """

    anchor_sizes: list[int] | None = Field(None, min_length=1)
    aspect_ratios: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0], min_length=1)
    fpn_channels: int = Field(256, ge=8)
    box_head_size: int = Field(1024, ge=8)
    proposals_train: int = Field(2000, ge=1)
    proposals_test: int = Field(1000, ge=1)
    roi_batch_size: int = Field(512, ge=1)
    score_threshold: float = Field(0.05, ge=0, lt=1)
    nms_iou: float = Field(0.5, gt=0, le=1)
    max_detections: int = Field(100, ge=1)
    threshold: Literal["max_f1", "fixed"] = "max_f1"
    fixed_threshold: float = Field(0.5, ge=0, le=1)
    match_iou: float = Field(0.5, gt=0, lt=1)
    froc_fps: list[float] = Field(
        default_factory=lambda: [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0], min_length=1
    )
    mask_threshold: float = Field(0.5, gt=0, lt=1)

    @field_validator("anchor_sizes", "aspect_ratios", "froc_fps")
    @classmethod
    def _positive_values(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and any(v <= 0 for v in value):
            raise ValueError("every value must be positive")
        return value


#: ``model.name`` of a classical (feature-based) run; its network, if any, is ``features.backbone``.
CLASSICAL_MODEL = "classical"


class EstimatorSpec(_Strict):
    """A registered scikit-learn estimator (feature selector or classifier) and its parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


class FeaturesConfig(_Strict):
    """A classical or hybrid run: features of every case, then scikit-learn's
    ``StandardScaler -> selector -> classifier`` fitted on the training split.

    A config with this section is a classical run (``model.name`` is then ``classical``).
    ``source``: ``handcrafted`` (radiomics-style first-order, shape and texture features of
    the whole image, after ``preprocess``; no preprocessing keeps the stored intensities) or
    ``deep`` (the pooled penultimate activations of ``backbone``: a registered model name,
    with ``pretrained`` ImageNet weights or a seeded random initialisation, or a finished run
    folder, whose own preprocessing and trained weights are used — the hybrid "CNN features
    -> RFE -> SVM" is ``source: deep`` with ``selector: {name: rfe}`` and an SVM).
    ``bins``: gray levels of the texture features; ``families``: handcrafted families (None:
    all). ``selector``/``classifier``: names registered in ``medlens.features`` with their
    parameters. ``grid``: an optional ``GridSearchCV`` grid over the pipeline's parameters
    (``{"classify__C": [0.1, 1, 10]}``), searched on the training split with ``grid_folds``
    patient-aware stratified folds, scored by ROC AUC.
    """

    source: Literal["handcrafted", "deep"] = "handcrafted"
    backbone: str | None = None
    pretrained: Literal["imagenet"] | None = None
    bins: int = Field(32, ge=2)
    families: list[str] | None = None
    selector: EstimatorSpec | None = None
    classifier: EstimatorSpec = Field(
        default_factory=lambda: EstimatorSpec(name="logistic_regression")
    )
    scale: bool = True
    grid: dict[str, list[Any]] | None = None
    grid_folds: int = Field(5, ge=2)
    batch_size: int = Field(64, ge=1, description="images per forward pass of the backbone")

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesConfig:
        if self.source == "deep" and not self.backbone:
            raise ValueError("source: deep needs a backbone (a model name or a run folder)")
        if self.source == "handcrafted" and (self.backbone or self.pretrained):
            raise ValueError("backbone and pretrained belong to source: deep")
        if self.source == "deep" and self.families is not None:
            raise ValueError("families belong to source: handcrafted")
        if self.grid is not None and any(not values for values in self.grid.values()):
            raise ValueError("every grid parameter needs a non-empty list of values")
        return self


class CalibrationConfig(_Strict):
    """Post-hoc calibration, fitted on the validation split after training and replayed by
    every later verb (predict, serve, PACS, export, ensembles).

    ``method``: ``temperature`` (one temperature; keeps the arg-max class and, for two
    classes, the ranking, so the AUC is unchanged; segmentation runs: per voxel), ``bcts``
    (temperature plus a bias per class: also moves probabilities towards validation's class
    mix; two classes: ranking kept), ``dirichlet`` (a logistic
    regression on log-probabilities), ``isotonic`` (a monotone step function per class), or
    ``none``. The decision threshold and the refer band are chosen on the calibrated
    validation probabilities.
    """

    method: Literal["temperature", "bcts", "dirichlet", "isotonic", "none"] = "temperature"


class ReferConfig(_Strict):
    """The "refer to a human" band of a classification run, chosen on validation.

    ``rule``: ``coverage`` refers the ``1 - coverage`` share of validation cases nearest the
    decision (two classes) or least confident (more classes); ``sens_spec`` (two classes)
    refers the cases between the highest threshold with validation sensitivity >=
    ``sensitivity`` and the lowest with specificity >= ``specificity``; ``none``.
    """

    rule: Literal["coverage", "sens_spec", "none"] = "coverage"
    coverage: float = Field(0.9, gt=0, le=1)
    sensitivity: float = Field(0.95, gt=0, le=1)
    specificity: float = Field(0.95, gt=0, le=1)


class OodConfig(_Strict):
    """The out-of-distribution flag of a classification run.

    ``score``: ``mahalanobis`` (the smallest Mahalanobis distance of a case's penultimate
    features to a training class mean, in at most ``max_dims`` PCA dimensions) or ``none``.
    The threshold flags ``false_alarm_rate`` of the validation cases. ``max_train_cases``:
    the training cases (a seeded sample) the score is fitted on.
    """

    score: Literal["mahalanobis", "none"] = "mahalanobis"
    false_alarm_rate: float = Field(0.05, gt=0, lt=1)
    max_dims: int = Field(256, ge=1)
    max_train_cases: int = Field(20000, ge=3)


class EvaluateConfig(_Strict):
    n_bootstrap: int = Field(1000, ge=0)
    ci_level: float = Field(0.95, gt=0, lt=1)


class RunConfig(_Strict):
    """A whole run: ``medlens train CONFIG.yaml`` reads one of these."""

    name: str = "run"
    task: Literal["classification", "segmentation", "registration", "detection"] = "classification"
    seed: int = 0
    output_dir: Path = Path("runs")
    data: DataConfig
    preprocess: list[TransformSpec] = Field(default_factory=list)
    augment: list[TransformSpec] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    refer: ReferConfig = Field(default_factory=ReferConfig)
    ood: OodConfig = Field(default_factory=OodConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    features: FeaturesConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _classical_model_name(cls, raw: Any) -> Any:
        """A config with a features section and no model section is a classical run."""
        if isinstance(raw, dict) and raw.get("features") is not None and "model" not in raw:
            return {**raw, "model": {"name": CLASSICAL_MODEL}}
        return raw

    @model_validator(mode="after")
    def _features_make_a_classical_run(self) -> RunConfig:
        if (self.features is not None) != (self.model.name == CLASSICAL_MODEL):
            raise ValueError(
                f"a features section makes a classical run, whose model.name is "
                f"{CLASSICAL_MODEL!r} (its network, if any, is features.backbone); "
                f"model.name {CLASSICAL_MODEL!r} needs a features section"
            )
        return self

    @model_validator(mode="after")
    def _fold_in_range(self) -> RunConfig:
        if self.data.folds is not None and self.data.fold >= self.data.folds:
            raise ValueError(f"data.fold must be below data.folds ({self.data.folds})")
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return value

    def run_dir(self) -> Path:
        return self.output_dir / self.name

    def to_yaml(self) -> str:
        """The resolved config with every default written out."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def format_location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a config key: ``stages[0].run``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_config(
    raw: Any, source: str | Path | None = None, base_dir: Path | None = None
) -> RunConfig:
    """Validate a config mapping against the schema. Relative data paths resolve against
    ``base_dir``.

    The schema knows keys, types and ranges; whether the task, the transforms and the
    estimators fit together is ``medlens.tasks.check_config``'s question.

    Raises:
        ConfigError: naming the first offending key and the reason.
    """
    if not isinstance(raw, dict):
        raise ConfigError("<root>", "a config must be a YAML mapping", source)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(format_location(tuple(err["loc"])), err["msg"], source) from None
    if base_dir is not None:
        for obj, attr in (
            (config.data, "path"),
            (config.model, "init"),
            (config.registration, "atlas"),
        ):
            value = getattr(obj, attr)
            if value is not None and not Path(value).is_absolute():
                setattr(obj, attr, (base_dir / value).resolve())
    return config


def read_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read, merge dotted overrides (``{"train.epochs": 2}``) into, and validate a YAML config
    against the schema (``medlens.tasks.load_config`` also checks it in full).

    Relative paths inside the file (data.path, model.init) resolve against the working
    directory, as a user typing them on the command line would expect.
    """
    return parse_config(read_config_mapping(path, overrides), source=path, base_dir=Path.cwd())


def read_config_mapping(path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
    """The YAML of ``path`` with dotted overrides merged in, not yet validated.

    Raises:
        ConfigError: a missing or unreadable file, invalid YAML, or an override inside a value
            that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        reason = "is a folder, not a config file" if path.is_dir() else "config file not found"
        raise ConfigError("<file>", reason, path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "<file>", f"cannot be read as text ({type(exc).__name__})", path
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("<yaml>", f"not valid YAML{where}", path) from None
    for dotted, value in (overrides or {}).items():
        node = raw if isinstance(raw, dict) else {}
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = ".".join(parents[: depth + 1])
                raise ConfigError(
                    dotted, f"cannot set a key inside {where}, which is not a mapping", path
                )
            node = child
        node[leaf] = value
    return raw
