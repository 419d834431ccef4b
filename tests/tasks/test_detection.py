"""The detection task: what it accepts and refuses at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlens.config import parse_config
from medlens.errors import ConfigError
from medlens.tasks import DETECTION, check_config, task_of


def test_the_detection_task_answers() -> None:
    assert DETECTION.predicts_boxes and not DETECTION.predicts_masks
    assert DETECTION.applies("skip_bad") and not DETECTION.applies("mask_format")
    assert DETECTION.data_formats == frozenset({"boxes"})


def test_a_valid_detection_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "task": "detection",
            "model": {"name": "faster_rcnn", "backbone": "resnet18"},
            "data": {"format": "boxes", "layout": "voc", "path": str(tmp_path)},
            "augment": [{"name": "random_rotate90"}, {"name": "random_scale"}],
        }
    )
    assert task_of(config) is DETECTION and check_config(config) is config


def test_configs_that_do_not_fit_detection(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="detection trains on data.format boxes"):
        check_config(
            parse_config(
                {
                    "task": "detection",
                    "model": {"name": "faster_rcnn"},
                    "data": {"path": str(tmp_path)},
                }
            )
        )
    base = {"task": "detection", "data": {"format": "boxes", "path": str(tmp_path)}}
    with pytest.raises(ConfigError, match="resnet18 is a classification model"):
        check_config(parse_config({**base, "model": {"name": "resnet18"}}))
    with pytest.raises(ConfigError, match="unet is not a registered classifier") as info:
        check_config(parse_config({**base, "model": {"name": "faster_rcnn", "backbone": "unet"}}))
    assert info.value.key == "model.backbone"
    with pytest.raises(ConfigError, match="boxes come in layout") as info:
        check_config(
            parse_config(
                {**base, "data": {**base["data"], "layout": "drive"}, "model": {"name": "fcos"}}
            )
        )


@pytest.mark.parametrize(
    ("key", "value"),
    [("channels", [8, 16, 32]), ("stem_stride", 2), ("dropout", 0.3), ("cifar_stem", True)],
)
def test_a_classifier_setting_is_refused_for_a_detector_not_ignored(
    tmp_path: Path, key: str, value: object
) -> None:
    config = {
        "task": "detection",
        "model": {"name": "faster_rcnn", "backbone": "resnet18", key: value},
        "data": {"format": "boxes", "layout": "voc", "path": str(tmp_path)},
    }
    with pytest.raises(
        ConfigError, match=f"faster_rcnn builds its backbone itself.*no {key}"
    ) as info:
        check_config(parse_config(config))
    assert info.value.key == f"model.{key}"
