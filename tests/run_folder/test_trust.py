"""Reading a run's calibrator: a calibrated run must keep a valid ``calibration.json``; only
a run from before calibration existed reads as uncalibrated without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
