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

#: The config sections about trusting a prediction (``Task.trust_sections``).
TRUST_SECTIONS = ("calibration", "refer", "ood")


@dataclass(frozen=True)
class Task:
    """One kind of task and its answers.

    Attributes:
        name: the config's ``task`` value (and ``metrics.json``'s).
        summary: one line for people (docs, ``--help``).
        data_formats: the ``data.format`` values it trains on.
        predicts_masks: a label per voxel (True) or one class per case (False).
        predicts_boxes: objects as boxes with a class and a score (detection).
        explainable: saliency and Grad-CAM explain its decisions.
        takes_features_section: a ``features:`` section (a classical run) is allowed.
        route: the service's endpoint for it (``/v1/predict``, ``/v1/segment``).
        predict_output: the default ``--out`` of ``medlens predict``.
        predict_options: the options of ``medlens predict`` that apply to its runs; any other
            is refused, never silently ignored.
        trust_sections: the config sections about trusting a prediction that its runs use
            (``calibration``, ``refer``, ``ood``); another section set away from its
            defaults is refused.
        calibration_methods: the ``calibration.method`` values its runs fit (training
            refuses others, and loading a run refuses a ``calibration.json`` of another);
            None: every method ``medlens.trust.calibrators`` has.
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
    predicts_boxes: bool = False
    trust_sections: frozenset[str] = field(default_factory=frozenset)
    calibration_methods: tuple[str, ...] | None = None

    def applies(self, option: str) -> bool:
        """Whether the ``medlens predict`` option ``option`` (``engine``, ``mask_format``...)
        means something for this task's runs."""
        return option in self.predict_options

    def check_config(self, config: RunConfig, source: str | Path | None = None) -> None:
        """Refuse a config this task cannot run, naming the key.

        Raises:
            ConfigError: a ``features`` section given to a task that takes none, or a trust
                section (``refer``, ``ood``, ``calibration``) its runs do not use, set away
                from its defaults.
        """
        for section in TRUST_SECTIONS:
            value = getattr(config, section)
            if section not in self.trust_sections and value != type(value)():
                uses = (
                    "runs use only " + ", ".join(sorted(self.trust_sections))
                    if self.trust_sections
                    else "runs use none of them"
                )
                raise ConfigError(
                    section,
                    f"does not apply to task: {self.name} ({self.name} {uses}); remove it",
                    source,
                )
        if config.features is not None and not self.takes_features_section:
            raise ConfigError(
                "features",
                f"a features section (a classical run) needs task: classification, "
                f"not task: {self.name}",
                source,
            )
