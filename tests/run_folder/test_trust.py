"""Reading a run's calibrator: a calibrated run must keep a valid ``calibration.json``; only
a run from before calibration existed reads as uncalibrated without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medlens.errors import InputError
from medlens.run_folder.trust import read_calibrator, read_trust_rule
from medlens.trust.calibrators import BiasCorrectedTemperature, TemperatureScaling, Uncalibrated

LABELS = {"class_names": ["normal", "pneumonia"], "threshold": 0.4}
REFER = {"rule": "coverage", "low": 0.3, "high": 0.6, "targets": {}}


def _run(
    tmp_path: Path,
    calibration: str | None,
    trust: dict | None = None,
    refer: bool = False,
) -> Path:
    """A run folder's trust files: ``calibration.json`` (text; None: absent), metrics.json
    (with ``trust`` when given) and labels.json (with a refer band when ``refer``)."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    if calibration is not None:
        (run / "calibration.json").write_text(calibration)
    metrics = {"task": "classification", **({"trust": trust} if trust is not None else {})}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "labels.json").write_text(json.dumps(LABELS | ({"refer": REFER} if refer else {})))
    return run


def test_a_run_from_before_calibration_reads_as_uncalibrated(tmp_path: Path) -> None:
    run = _run(tmp_path, None)  # no calibration.json, no trust in metrics, no refer band
    assert read_calibrator(run, 2) == Uncalibrated()
    assert read_trust_rule(run, LABELS).calibrator == Uncalibrated()
    (run / "metrics.json").unlink()  # nor when metrics.json is gone too
    assert read_calibrator(run, 2) == Uncalibrated()


@pytest.mark.parametrize(
    ("trust", "refer", "evidence"),
    [
        ({"calibration": {"method": "temperature"}}, False, "metrics.json records calibration"),
        ({"calibration": {"method": "none"}}, False, "method 'none'"),
        (None, True, "labels.json records a refer band"),
    ],
)
def test_a_calibrated_run_without_its_calibration_json_is_refused(
    tmp_path: Path, trust: dict | None, refer: bool, evidence: str
) -> None:
    run = _run(tmp_path, None, trust=trust, refer=refer)
    with pytest.raises(InputError, match=evidence) as caught:
        read_calibrator(run, 2)
    assert caught.value.path == str(run / "calibration.json")
    assert "chosen on calibrated probabilities" in caught.value.reason


@pytest.mark.parametrize("text", ["{}", '{"temperature": 0.8}'])
def test_an_empty_record_is_refused_even_in_a_run_from_before_calibration(
    tmp_path: Path, text: str
) -> None:
    run = _run(tmp_path, text)
    with pytest.raises(InputError, match="records no method") as caught:
        read_calibrator(run, 2)
    assert caught.value.path == str(run / "calibration.json")


def test_an_explicit_none_and_valid_records_load(tmp_path: Path) -> None:
    trust = {"calibration": {"method": "none"}}
    assert read_calibrator(_run(tmp_path / "a", '{"method": "none"}', trust), 2) == Uncalibrated()
    record = '{"method": "temperature", "temperature": 0.8, "fitted_on": "val"}'
    assert read_calibrator(_run(tmp_path / "b", record), 2) == TemperatureScaling(0.8)


def test_malformed_parameters_name_the_file_and_the_field(tmp_path: Path) -> None:
    run = _run(tmp_path, '{"method": "bcts", "temperature": 1.0, "bias": [0.0, 0.5, -0.5]}')
    assert isinstance(read_calibrator(run, 3), BiasCorrectedTemperature)
    with pytest.raises(InputError, match="bias has 3 values; a run of 2 classes") as caught:
        read_trust_rule(run, LABELS)  # the class count comes from labels.json
    assert caught.value.path == str(run / "calibration.json")


SEG_LABELS = {"class_names": ["background", "vessel"], "threshold": 0.5, "task": "segmentation"}
SEG_TEMPERATURE = {
    "method": "temperature",
    "temperature": 0.375,
    "fitted_on": "val",
    "unit": "voxel",
}


def _seg_run(
    tmp_path: Path,
    calibration: dict | None,
    trust: dict | None = SEG_TEMPERATURE,
    config_calibration: dict | None = None,
) -> Path:
    """A segmentation run folder's trust files as training writes them: ``calibration.json``
    (None: absent), ``metrics.json`` (``trust.calibration`` = ``trust`` unless None),
    ``config.yaml`` (``task: segmentation`` and ``calibration: config_calibration`` unless
    None) and ``labels.json``."""
    run = tmp_path / "seg"
    run.mkdir(parents=True)
    if calibration is not None:
        (run / "calibration.json").write_text(json.dumps(calibration))
    metrics = {"task": "segmentation", **({"trust": {"calibration": trust}} if trust else {})}
    (run / "metrics.json").write_text(json.dumps(metrics))
    config = {"name": "vessels", "task": "segmentation", "data": {"format": "segmentation"}}
    if config_calibration is not None:
        config["calibration"] = config_calibration
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "labels.json").write_text(json.dumps(SEG_LABELS))
    return run


@pytest.mark.parametrize(
    "record",
    [
        {"method": "bcts", "temperature": 1, "bias": [0.5]},  # the audit's record
        {"method": "dirichlet", "coef": [[1.0, -1.0]], "intercept": [0.0]},
        {"method": "isotonic", "knots_x": [[-1.0, 1.0]], "knots_y": [[0.0, 1.0]]},
        {"method": "bcts", "temperature": 1, "bias": [0.5, 0.1]},  # malformed too
    ],
)
def test_a_segmentation_run_refuses_a_calibrator_segmentation_never_fits(
    tmp_path: Path, record: dict
) -> None:
    run = _seg_run(tmp_path, record, trust=None)  # nothing else to contradict
    with pytest.raises(InputError) as caught:
        read_trust_rule(run, SEG_LABELS)
    assert caught.value.path == str(run / "calibration.json")
    assert caught.value.reason.startswith(
        f"records method {record['method']!r}, but segmentation runs fit only temperature or "
        "none (calibration.method)"
    )


def test_a_segmentation_run_loads_its_temperature_and_an_explicit_none(tmp_path: Path) -> None:
    seg = _seg_run(tmp_path / "a", SEG_TEMPERATURE, config_calibration={"method": "temperature"})
    assert read_trust_rule(seg, SEG_LABELS).calibrator == TemperatureScaling(0.375)
    none = {"method": "none", "fitted_on": "val", "unit": "voxel"}
    off = _seg_run(tmp_path / "b", none, none, config_calibration={"method": "none"})
    assert read_calibrator(off, 2) == Uncalibrated()


def test_the_methods_a_segmentation_run_loads_are_those_training_fits() -> None:
    from medlens.tasks import SEGMENTATION
    from medlens.train.segmentation.calibration import SEGMENTATION_METHODS

    assert SEGMENTATION_METHODS == SEGMENTATION.calibration_methods == ("temperature", "none")


@pytest.mark.parametrize(
    ("calibration", "trust", "config", "reason"),
    [
        (  # the audit's {"method": "none"} in a run whose metrics.json records temperature
            {"method": "none"},
            SEG_TEMPERATURE,
            None,
            "records method 'none', but metrics.json records calibration method "
            "'temperature' (trust.calibration.method)",
        ),
        (  # metrics.json's trust section deleted: config.yaml still says temperature
            {"method": "none"},
            None,
            {"method": "temperature"},
            "records method 'none', but config.yaml records calibration.method 'temperature'",
        ),
        (
            SEG_TEMPERATURE | {"fitted_on": "test"},
            SEG_TEMPERATURE,
            {"method": "temperature"},
            "records fitted_on 'test', but medlens fits calibration on the validation split "
            "only (fitted_on 'val')",
        ),
    ],
)
def test_a_calibration_json_that_contradicts_the_run_is_refused(
    tmp_path: Path, calibration: dict, trust: dict | None, config: dict | None, reason: str
) -> None:
    run = _seg_run(tmp_path, calibration, trust, config_calibration=config)
    with pytest.raises(InputError) as caught:
        read_calibrator(run, 2)
    assert caught.value.path == str(run / "calibration.json")
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert caught.value.reason.endswith("restore the run's own file or train the run again")


def test_a_classification_calibration_json_that_contradicts_the_run_is_refused(
    tmp_path: Path,
) -> None:
    trust = {"calibration": {"method": "bcts", "temperature": 1.0, "bias": [0.5]}}
    run = _run(tmp_path / "a", '{"method": "temperature", "temperature": 0.8}', trust)
    with pytest.raises(InputError, match="records method 'temperature', but metrics.json"):
        read_calibrator(run, 2)
    same = _run(tmp_path / "b", '{"method": "bcts", "temperature": 1.0, "bias": [0.5]}', trust)
    assert read_calibrator(same, 2).method == "bcts"  # the calibrator the run scored: it loads
    # the same method with other parameters (an edited file) is not the calibrator scored
    edited = _run(tmp_path / "c", '{"method": "bcts", "temperature": 1.0, "bias": [0.4]}', trust)
    with pytest.raises(InputError) as caught:
        read_calibrator(edited, 2)
    assert caught.value.reason.startswith(
        "holds other bcts parameters than the calibrator metrics.json records with its scores "
        '(trust.calibration) (bias: {"bias": [0.4]} against {"bias": [0.5]})'
    )
    # a metrics.json whose record holds no parameters has nothing to compare
    bare = _run(tmp_path / "d", '{"method": "bcts", "temperature": 1.0, "bias": [0.4]}',
                {"calibration": {"method": "bcts"}})  # fmt: skip
    assert read_calibrator(bare, 2).method == "bcts"


def test_a_run_whose_config_records_calibration_needs_its_calibration_json(
    tmp_path: Path,
) -> None:
    """calibration.json and metrics.json's trust section both deleted: config.yaml still
    says the run was calibrated."""
    run = _seg_run(tmp_path, None, trust=None, config_calibration={"method": "temperature"})
    with pytest.raises(InputError) as caught:
        read_calibrator(run, 2)
    assert caught.value.path == str(run / "calibration.json")
    assert caught.value.reason.startswith(
        "missing, but config.yaml records calibration.method 'temperature':"
    )
    old = _seg_run(tmp_path / "old", None, trust=None)  # no calibration key: a run from before
    assert read_calibrator(old, 2) == Uncalibrated()


def test_the_missing_file_error_of_a_segmentation_run_gives_a_segmentation_reason(
    tmp_path: Path,
) -> None:
    run = _seg_run(tmp_path, None, config_calibration={"method": "temperature"})
    with pytest.raises(InputError) as caught:
        read_calibrator(run, 2)
    reason = caught.value.reason
    assert reason.startswith("missing, but metrics.json records calibration method")
    assert "refer band" not in reason and "chosen on calibrated probabilities" not in reason
    assert "uncertainty maps" in reason and "masks and threshold keep their raw meaning" in reason


def test_a_detection_config_with_the_unused_calibration_default_is_no_evidence(
    tmp_path: Path,
) -> None:
    """Every resolved config.yaml holds ``calibration: {method: temperature}``; a task whose
    runs do not calibrate never writes calibration.json."""
    run = tmp_path / "boxes"
    run.mkdir()
    config = {"task": "detection", "calibration": {"method": "temperature"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert read_calibrator(run, 3) == Uncalibrated()


def test_ensemble_and_classical_runs_load_their_calibration(tmp_path: Path) -> None:
    """An ensemble's config.yaml has no calibration key (``ensemble.calibration``); a
    classical run's records it as a deep run's does."""
    record = {"method": "isotonic", "knots_x": [[-1.0, 1.0]], "knots_y": [[0.0, 1.0]]}
    trust = {"calibration": record | {"fitted_on": "val", "splits": {}}}
    written = json.dumps(record | {"fitted_on": "val", "source_prior": [0.4, 0.6]})
    ensemble = _run(tmp_path / "ensemble", written, trust, refer=True)
    config = {"task": "classification", "kind": "ensemble", "ensemble": {"calibration": "isotonic"}}
    (ensemble / "config.yaml").write_text(yaml.safe_dump(config))
    assert read_trust_rule(ensemble, LABELS).calibrator.method == "isotonic"
    classical = _run(tmp_path / "classical", written, trust, refer=True)
    config = {"task": "classification", "features": {"source": "handcrafted"}}
    (classical / "config.yaml").write_text(
        yaml.safe_dump(config | {"calibration": {"method": "isotonic"}})
    )
    assert read_trust_rule(classical, LABELS).calibrator.method == "isotonic"
