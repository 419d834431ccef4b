"""A trust section (calibration, refer, ood) set for a task that does not use it is refused."""

from __future__ import annotations

import pytest

from medlens.config import parse_config
from medlens.errors import ConfigError
from medlens.tasks import task_named


def test_a_segmentation_run_refuses_a_refer_band_and_keeps_its_calibration() -> None:
    base = {"task": "segmentation", "data": {"path": "x", "format": "segmentation"}}
    task = task_named("segmentation")
    task.check_config(parse_config({**base, "calibration": {"method": "none"}}))
    task.check_config(parse_config(base))  # defaults, as every resolved config.yaml holds
    with pytest.raises(ConfigError, match=r"refer: does not apply to task: segmentation"):
        task.check_config(parse_config({**base, "refer": {"rule": "sens_spec"}}))
    with pytest.raises(ConfigError, match=r"^ood: "):
        task.check_config(parse_config({**base, "ood": {"score": "none"}}))


def test_a_classification_run_takes_all_three() -> None:
    config = parse_config(
        {
            "data": {"path": "x.npz"},
            "calibration": {"method": "isotonic"},
            "refer": {"rule": "sens_spec", "sensitivity": 0.98},
            "ood": {"false_alarm_rate": 0.01},
        }
    )
    task_named("classification").check_config(config)
