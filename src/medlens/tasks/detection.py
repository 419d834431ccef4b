"""Detection: objects as boxes with a class and a score (and, for Mask R-CNN, an instance
mask each), scored per image against reference boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medlens.config import RunConfig
from medlens.errors import ConfigError
from medlens.tasks.base import Task

#: ``data.layout`` values of box data.
BOX_LAYOUTS = ("auto", "voc", "coco", "csv", "instance_masks")


#: Model settings a detector has none of, with their unset values: the factory that builds
#: detectors takes the backbone's name and weights only.
_NOT_FOR_DETECTORS: dict[str, object] = {
    "channels": None,
    "deep_supervision": False,
    "stem_stride": 1,
    "dropout": 0.0,
    "cifar_stem": None,
}


@dataclass(frozen=True)
class DetectionTask(Task):
    """The detection task: box layouts only, a registered detector, a backbone that is a
    classifier, and no features section."""

    def check_config(self, config: RunConfig, source: str | Path | None = None) -> None:
        """Refuse what a detection run cannot use, naming the key.

        Raises:
            ConfigError: a features section, a segmentation layout, a backbone that is not a
                registered classifier, or a classifier's or segmenter's own model setting
                (``_NOT_FOR_DETECTORS``), which a detector would otherwise ignore.
        """
        super().check_config(config, source)
        model = config.model
        for key, unset in _NOT_FOR_DETECTORS.items():
            if getattr(model, key) != unset:
                raise ConfigError(
                    f"model.{key}",
                    f"{model.name} builds its backbone itself and has no {key} to set; "
                    "give the backbone's settings to its own classification run and pass "
                    "that run as model.init",
                    source,
                )
        if config.data.layout not in BOX_LAYOUTS:
            raise ConfigError(
                "data.layout",
                f"boxes come in layout {', '.join(BOX_LAYOUTS)}, not {config.data.layout!r}",
                source,
            )
        backbone = config.model.backbone
        if backbone is not None:
            from medlens.models import MODELS, model_names

            if backbone not in MODELS or MODELS.get(backbone).task != "classification":
                raise ConfigError(
                    "model.backbone",
                    f"{backbone} is not a registered classifier; choose one of "
                    f"{', '.join(model_names('classification'))}",
                    source,
                )


DETECTION = DetectionTask(
    name="detection",
    summary="objects as boxes (and instance masks) with a class and a score",
    data_formats=frozenset({"boxes"}),
    predicts_masks=False,
    explainable=False,
    takes_features_section=False,
    route="/v1/detect",
    predict_output=Path("detections"),
    predict_options=frozenset({"skip_bad", "quiet"}),
    predicts_boxes=True,
)
