"""The pipeline config: one YAML naming the stages of a composite system (segment, detect,
crop, features, classify) that ``medlens train``, ``predict``, ``evaluate`` and ``cv`` run in
order.

A pipeline YAML says ``kind: pipeline`` at its top. Each stage that trains a network carries
the fragment of an ordinary medlens run config (``model``, ``preprocess``, ``augment``,
``train``, ``segmentation``, ``detection``) under ``run``; the pipeline fills in the task, the
data, the seed and the folders. Relative paths resolve against the working directory, as in
every medlens config. Stands at ground level with ``medlens.config``: imports nothing else of
medlens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medlens.config import EstimatorSpec, format_location
from medlens.errors import ConfigError

PIPELINE_KIND = "pipeline"
ENSEMBLE_KIND = "pipeline_ensemble"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CellData(_Strict):
    """Images, their region masks and one class label per image.

    ``images``: a glob under ``path`` (``Dataset 1/*.bmp``); ``masks``: the mask of each image,
    a pattern with ``{stem}`` (the image's file name without extension), or None when no
    stage needs masks; ``mask_values``: the grey level of each region in the mask files
    (``{cytoplasm: 128, nucleus: 255}``); every other value than 0 (background) is an error.
    ``labels``: a CSV under ``path`` with ``id_column`` (an image's stem; numeric ids match
    zero-padded stems: ``7`` is ``007``) and ``label_column``; ``class_names`` names the label
    values (None: the values themselves are the names).

    ``small_classes``: what to do with a class having fewer cases than ``folds`` (it cannot
    be in every test fold, nor learned from a handful): ``error`` stops with a clear message;
    ``exclude`` leaves its cases out of training and scoring and lists them in the run
    folder (``excluded.csv``) and the report.
    """

    path: Path
    images: str
    masks: str | None = None
    mask_values: dict[str, int] = Field(default_factory=dict)
    labels: str
    id_column: str = "id"
    label_column: str = "label"
    class_names: dict[str, str] | None = None
    small_classes: Literal["error", "exclude"] = "error"
    folds: int = Field(5, ge=2, description="outer stratified folds; fold `fold` is the test set")
    fold: int = Field(0, ge=0)
    val_fraction: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="share of each network's training cases that chooses its epoch",
    )

    @field_validator("mask_values")
    @classmethod
    def _grey_levels(cls, value: dict[str, int]) -> dict[str, int]:
        levels = list(value.values())
        if any(not 1 <= v <= 255 for v in levels) or len(set(levels)) != len(levels):
            raise ValueError("each region needs its own grey level in 1..255 (0 is background)")
        if "background" in value:
            raise ValueError("background is the value 0; list only the regions")
        return value

    @model_validator(mode="after")
    def _fold_in_range(self) -> CellData:
        if self.fold >= self.folds:
            raise ValueError(f"fold must be below folds ({self.folds})")
        return self


class _Stage(_Strict):
    """A stage; ``from_run`` (segment, detect, classify): a finished medlens run folder of the
    stage's task, trained outside this pipeline, used as it is (no training, no
    cross-fitting: the report says so)."""

    name: str

    @model_validator(mode="after")
    def _one_source(self) -> Any:
        if getattr(self, "from_run", None) is not None and (
            getattr(self, "run", None) or getattr(self, "source", "model") != "model"
        ):
            raise ValueError("from_run (a finished run folder) replaces run and source: give one")
        return self

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not value or "/" in value or value.startswith(".") or value == "data":
            raise ValueError("a stage name is a plain folder name (no '/', not 'data')")
        return value


class SegmentStage(_Stage):
    """A segmenter of the data's regions. ``source: model`` trains one (``run``: the run config
    fragment); later stages then see its predicted masks: cross-fitted on the training cases (``crossfit_folds`` segmenters, each
    predicting the cases it did not train on), the mean of those segmenters' probabilities
    on test and new cases. ``source: ground_truth`` passes the reference masks on instead: an
    upper bound, said so in the report.
    """

    kind: Literal["segment"]
    source: Literal["model", "ground_truth"] = "model"
    input: str = Field(
        "image",
        description="image, or a crop stage: segment its crops (a cascade); the maps are "
        "pasted back onto each image's grid",
    )
    run: dict[str, Any] = Field(default_factory=dict)
    from_run: Path | None = None
    crossfit_folds: int = Field(5, ge=2)


class DetectStage(_Stage):
    """A detector (``task: detection``) of one object per image (the top-scoring detection of
    its class ``object``), trained on the boxes of the data's masks (the union of ``regions``,
    or every region), cross-fitted like ``segment``. ``source: ground_truth`` takes the
    reference box."""

    kind: Literal["detect"]
    source: Literal["model", "ground_truth"] = "model"
    run: dict[str, Any] = Field(default_factory=dict)
    regions: list[str] | None = None
    object: str = "object"
    from_run: Path | None = None
    crossfit_folds: int = Field(5, ge=2)


class CropStage(_Stage):
    """A crop of each image around what an earlier stage found: the box of a ``detect`` stage,
    or the bounding box of ``regions`` in a ``segment`` stage's mask; widened by ``margin``
    (a fraction of the box's side, clipped at the image border) and resized to ``size``
    pixels. A box that lies outside its image is an error; an empty mask crops the whole
    image and the case is marked so."""

    kind: Literal["crop"]
    input: str
    regions: list[str] | None = None
    margin: float = Field(0.15, ge=0, le=2)
    size: list[int] = Field(default_factory=lambda: [96, 96], min_length=2, max_length=2)


class HandcraftedSpec(_Strict):
    """Radiomics-style features per region and channel (``medlens.features``)."""

    bins: int = Field(32, ge=2)
    families: list[str] | None = None
    channels: list[int] | None = Field(None, description="None: every channel of the image")


class DeepSpec(_Strict):
    """Pooled penultimate activations of ``backbone`` on the crop of ``crop`` (a crop stage).

    ``backbone``: a registered classifier name, with ``pretrained: imagenet`` weights or a
    seeded random initialisation (random-projection features).
    """

    backbone: str
    pretrained: Literal["imagenet"] | None = None
    crop: str


class FeaturesStage(_Stage):
    """Features of each case: handcrafted features inside each of ``regions`` (name -> the
    mask regions it joins: ``{cell: [nucleus, cytoplasm]}``) of the ``masks`` stage's label
    map, and/or deep features of a crop."""

    kind: Literal["features"]
    masks: str | None = None
    regions: dict[str, list[str]] = Field(default_factory=dict)
    handcrafted: HandcraftedSpec | None = None
    deep: DeepSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> FeaturesStage:
        if self.handcrafted is None and self.deep is None:
            raise ValueError("a features stage needs handcrafted, deep, or both")
        if self.handcrafted is not None and (self.masks is None or not self.regions):
            raise ValueError("handcrafted features need masks (a segment stage) and regions")
        return self


class ClassifyStage(_Stage):
    """The class of each case: a scikit-learn ``estimator`` (``StandardScaler -> selector ->
    classifier``) on a features stage, or a CNN (``run``: the run config fragment) on the
    images (``input: image``) or on a crop stage's crops."""

    kind: Literal["classify"]
    input: str = "image"
    estimator: EstimatorSpec | None = None
    selector: EstimatorSpec | None = None
    run: dict[str, Any] = Field(default_factory=dict)
    from_run: Path | None = None


Stage = Annotated[
    SegmentStage | DetectStage | CropStage | FeaturesStage | ClassifyStage,
    Field(discriminator="kind"),
]


class PipelineConfig(_Strict):
    """A composite system as one run: ``medlens train pipeline.yaml``."""

    kind: Literal["pipeline"]
    name: str = "pipeline"
    seed: int = 0
    output_dir: Path = Path("runs")
    data: CellData
    stages: list[Stage] = Field(min_length=1)
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples of each CI")
    examples: int = Field(6, ge=0, description="test cases shown through every stage")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return value

    @model_validator(mode="after")
    def _wired(self) -> PipelineConfig:
        seen: dict[str, str] = {}
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"two stages are named {stage.name!r}")
            for ref, wants in _references(stage):
                if ref not in seen:
                    raise ValueError(
                        f"stage {stage.name!r} takes {ref!r}, which is not an earlier stage"
                    )
                if seen[ref] not in wants:
                    raise ValueError(
                        f"stage {stage.name!r} takes {ref!r}, a {seen[ref]} stage; it needs "
                        f"a {' or '.join(wants)} stage"
                    )
            seen[stage.name] = stage.kind
        if self.stages[-1].kind != "classify":
            raise ValueError("the last stage must be a classify stage")
        return self

    def run_dir(self) -> Path:
        return self.output_dir / self.name

    def stage(self, name: str) -> Any:
        return next(s for s in self.stages if s.name == name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _references(stage: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The earlier stages ``stage`` reads, with the kinds each may be."""
    if isinstance(stage, SegmentStage) and stage.input != "image":
        return [(stage.input, ("crop",))]
    if isinstance(stage, CropStage):
        return [(stage.input, ("segment", "detect"))]
    if isinstance(stage, FeaturesStage):
        refs: list[tuple[str, tuple[str, ...]]] = []
        if stage.masks is not None:
            refs.append((stage.masks, ("segment",)))
        if stage.deep is not None:
            refs.append((stage.deep.crop, ("crop",)))
        return refs
    if isinstance(stage, ClassifyStage) and stage.input != "image":
        return [(stage.input, ("features", "crop"))]
    return []


class EnsembleConfig(_Strict):
    """The mean class probabilities of finished pipeline runs on the same data and fold."""

    kind: Literal["pipeline_ensemble"]
    name: str = "pipeline-ensemble"
    output_dir: Path = Path("runs")
    members: list[Path] = Field(min_length=2)
    n_bootstrap: int = Field(1000, ge=0)


def is_pipeline_file(path: str | Path) -> bool:
    """True when ``path`` is a YAML file whose top-level ``kind`` is a pipeline kind."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the ordinary config reader reports it
    return isinstance(raw, dict) and raw.get("kind") in (PIPELINE_KIND, ENSEMBLE_KIND)


def parse_pipeline(
    raw: Any, source: str | Path | None = None, base_dir: Path | None = None
) -> PipelineConfig | EnsembleConfig:
    """Validate a pipeline (or pipeline ensemble) mapping; relative paths resolve against
    ``base_dir``.

    Raises:
        ConfigError: naming the first offending key and the reason.
    """
    if not isinstance(raw, dict):
        raise ConfigError("<root>", "a config must be a YAML mapping", source)
    model = EnsembleConfig if raw.get("kind") == ENSEMBLE_KIND else PipelineConfig
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p not in _STAGE_KINDS)
        raise ConfigError(format_location(loc), err["msg"], source) from None
    if base_dir is not None:
        if isinstance(config, EnsembleConfig):
            config.members = [_resolved(base_dir, m) for m in config.members]
        else:
            config.data.path = _resolved(base_dir, config.data.path)
            for stage in config.stages:
                found = getattr(stage, "from_run", None)
                if isinstance(found, Path):
                    stage.from_run = _resolved(base_dir, found)  # type: ignore[union-attr]
    return config


_STAGE_KINDS = ("segment", "detect", "crop", "features", "classify")


def _resolved(base: Path, value: Path) -> Path:
    return value if value.is_absolute() else (base / value).resolve()


def read_pipeline(
    path: str | Path, overrides: dict[str, Any] | None = None
) -> PipelineConfig | EnsembleConfig:
    """Read a pipeline YAML, merge dotted overrides (``{"data.fold": 2}``), validate it."""
    from medlens.config import read_config_mapping

    raw = read_config_mapping(path, overrides)
    return parse_pipeline(raw, source=path, base_dir=Path.cwd())
