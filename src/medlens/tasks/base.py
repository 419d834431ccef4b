"""What every task kind answers: the one place a task's differences are written down.

A task (classification, segmentation, ...) is an object, not a string to compare: code that
behaves differently per task asks the run's task a question (``task.predicts_masks``,
``task.applies("engine")``) or looks the task up in one table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medlens.config import RunConfig
from medlens.errors import ConfigError


@dataclass(frozen=True)
class Task:
    """One kind of task and its answers.

    Attributes:
        name: the config's ``task`` value (and ``metrics.json``'s).
        summary: one line for people (docs, ``--help``).
        data_formats: the ``data.format`` values it trains on.
        predicts_masks: a label per voxel (True) or one class per case (False).
        explainable: saliency and Grad-CAM explain its decisions.
        takes_features_section: a ``features:`` section (a classical run) is allowed.
        route: the service's endpoint for it (``/v1/predict``, ``/v1/segment``).
        predict_output: the default ``--out`` of ``medlens predict``.
        predict_options: the options of ``medlens predict`` that apply to its runs; any other
            is refused, never silently ignored.
    """

    name: str
    summary: str
    data_formats: frozenset[str]
    predicts_masks: bool
    explainable: bool
    takes_features_section: bool
    route: str
    predict_output: Path
    predict_options: frozenset[str] = field(default_factory=frozenset)

    def applies(self, option: str) -> bool:
        """Whether the ``medlens predict`` option ``option`` (``engine``, ``mask_format``...)
        means something for this task's runs."""
        return option in self.predict_options

    def check_config(self, config: RunConfig, source: str | Path | None = None) -> None:
        """Refuse a config this task cannot run, naming the key.

        Raises:
            ConfigError: a ``features`` section given to a task that takes none.
        """
        if config.features is not None and not self.takes_features_section:
            raise ConfigError(
                "features",
                f"a features section (a classical run) needs task: classification, "
                f"not task: {self.name}",
                source,
            )
