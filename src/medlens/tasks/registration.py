"""Registration: a transform (here, a learned displacement field) that maps one image onto
another; ``medlens register`` fits one per pair without training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medlens.config import RunConfig
from medlens.errors import ConfigError
from medlens.tasks.base import Task


@dataclass(frozen=True)
class RegistrationTask(Task):
    """The registration task: it normalises intensities itself, so it takes no
    ``preprocess`` or ``augment`` transforms."""

    def check_config(self, config: RunConfig, source: str | Path | None = None) -> None:
        """Refuse a features section, and any preprocess or augment transform.

        Raises:
            ConfigError: naming the key.
        """
        super().check_config(config, source)
        for key in ("preprocess", "augment"):
            if getattr(config, key):
                raise ConfigError(
                    key,
                    "task: registration scales each image's intensities itself (0.5th-99.5th "
                    "percentiles to [0, 1]) and trains on the images' own grid; leave it empty",
                    source,
                )


REGISTRATION = RegistrationTask(
    name="registration",
    summary="a displacement field that maps a moving image onto a fixed one",
    data_formats=frozenset({"pairs"}),
    predicts_masks=False,
    explainable=False,
    takes_features_section=False,
    route="/v1/register",
    predict_output=Path("registration"),
    predict_options=frozenset({"quiet"}),
)
