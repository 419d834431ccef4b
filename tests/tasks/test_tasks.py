"""Task objects: one per ``task:`` value, each answering the same questions."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from medlens.config import DataConfig, RunConfig, parse_config
from medlens.errors import ConfigError, UnknownNameError
from medlens.tasks import CLASSIFICATION, SEGMENTATION, TASKS, check_config, task_named, task_of


def test_every_config_task_value_has_one_task_object() -> None:
    values = typing.get_args(RunConfig.model_fields["task"].annotation)
    assert sorted(values) == TASKS.names()
    for name in values:
        assert task_named(name).name == name


def test_every_data_format_belongs_to_exactly_one_task() -> None:
    formats = typing.get_args(DataConfig.model_fields["format"].annotation)
    for fmt in formats:
        owners = [name for name in TASKS if fmt in TASKS.get(name).data_formats]
        assert len(owners) == 1, (fmt, owners)


def test_unknown_task_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="classification"):
        task_named("detection_of_everything")


def test_task_of_reads_the_config(tmp_path: Path) -> None:
    assert task_of(parse_config({"data": {"path": str(tmp_path)}})) is CLASSIFICATION
    seg = parse_config(
        {
            "task": "segmentation",
            "model": {"name": "unet"},
            "data": {"format": "segmentation", "path": str(tmp_path)},
        }
    )
    assert task_of(seg) is SEGMENTATION


def test_predict_options_differ_by_task() -> None:
    assert CLASSIFICATION.applies("engine") and not SEGMENTATION.applies("engine")
    assert SEGMENTATION.applies("mask_format") and not CLASSIFICATION.applies("mask_format")
    assert SEGMENTATION.predicts_masks and not CLASSIFICATION.predicts_masks


def test_segmentation_data_with_the_classification_task_is_refused(tmp_path: Path) -> None:
    config = parse_config({"data": {"format": "segmentation", "path": str(tmp_path)}})
    with pytest.raises(ConfigError, match="needs task: segmentation") as info:
        check_config(config, source="c.yaml")
    assert info.value.key == "data.format" and info.value.source == "c.yaml"


def test_features_section_is_refused_for_segmentation(tmp_path: Path) -> None:
    config = parse_config(
        {
            "task": "segmentation",
            "data": {"format": "segmentation", "path": str(tmp_path)},
            "features": {},
        }
    )
    with pytest.raises(ConfigError, match="needs task: classification") as info:
        check_config(config)
    assert info.value.key == "features"


def test_a_valid_config_passes_unchanged(tmp_path: Path) -> None:
    config = parse_config(
        {"data": {"path": str(tmp_path)}, "preprocess": [{"name": "resize", "size": 8}]}
    )
    assert check_config(config) is config


def test_every_task_has_a_run_module_a_predictor_and_document_writers() -> None:
    """A new task kind (detection, registration...) fails here until every layer that
    behaves per task knows it."""
    from medlens.commands.predict import PREDICTORS
    from medlens.commands.train import RUN_MODULES
    from medlens.models.registry import TASKS as MODEL_TASKS
    from medlens.report.documents import DOCUMENT_WRITERS

    for table in (RUN_MODULES, PREDICTORS, DOCUMENT_WRITERS):
        assert sorted(table) == TASKS.names()
    assert sorted(MODEL_TASKS) == TASKS.names()


def test_a_network_of_another_task_is_refused_at_load(tmp_path: Path) -> None:
    config = parse_config({"model": {"name": "unet"}, "data": {"path": str(tmp_path)}})
    with pytest.raises(ConfigError, match="unet is a segmentation model") as info:
        check_config(config)
    assert info.value.key == "model.name" and "resnet18" in info.value.reason


def test_registration_is_a_task_of_its_own(tmp_path: Path) -> None:
    from medlens.tasks import REGISTRATION

    config = parse_config(
        {
            "task": "registration",
            "model": {"name": "voxelmorph"},
            "data": {"format": "pairs", "path": str(tmp_path)},
        }
    )
    assert task_of(config) is REGISTRATION and check_config(config) is config
    assert not REGISTRATION.predicts_masks and not REGISTRATION.applies("engine")
    assert REGISTRATION.applies("quiet")


def test_registration_refuses_preprocessing_and_other_formats(tmp_path: Path) -> None:
    base = {"task": "registration", "model": {"name": "voxelmorph"}}
    config = parse_config(
        {
            **base,
            "data": {"format": "pairs", "path": str(tmp_path)},
            "augment": [{"name": "random_flip"}],
        }
    )
    with pytest.raises(ConfigError) as info:
        check_config(config)
    assert info.value.key == "augment"
    wrong = parse_config({**base, "data": {"format": "segmentation", "path": str(tmp_path)}})
    with pytest.raises(ConfigError, match="registration trains on data.format pairs"):
        check_config(wrong)
    unet = parse_config(
        {**base, "model": {"name": "unet"}, "data": {"format": "pairs", "path": str(tmp_path)}}
    )
    with pytest.raises(ConfigError, match="voxelmorph"):
        check_config(unet)
