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


@dataclass(frozen=True)
class DetectionTask(Task):
    """The detection task: box layouts only, a registered detector, a backbone that is a
    classifier, and no features section."""

    def check_config(self, config: RunConfig, source: str | Path | None = None) -> None:
        """Refuse what a detection run cannot use, naming the key.

        Raises:
            ConfigError: a features section, a segmentation layout, or a backbone that is not a
                registered classifier.
        """
        super().check_config(config, source)
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
