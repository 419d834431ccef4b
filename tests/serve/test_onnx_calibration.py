"""The ONNX engine serves a run's ``model.onnx`` only when the calibrator it records (in its
metadata, at export) is the run's ``calibration.json``: the graph holds the raw logits and the
service applies ``calibration.json``'s calibrator after it, so a file that records another one
no longer describes what would be served, and the start is refused naming both files.

The mismatch is made on the ONNX side (its metadata rewritten, its graph and weight hash
untouched): editing ``calibration.json`` alone is caught earlier, by the run folder's own
check against ``metrics.json`` (``medlens.run_folder.trust``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from medlens.errors import ConfigError
from medlens.inference.onnx import export_onnx, onnx_metadata
from medlens.serve.models_store import load_models


def _exported_copy(source: Path, tmp_path: Path) -> Path:
    run = tmp_path / source.name
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("model.onnx", "model.int8.onnx"))
    export_onnx(run)
    return run


def _set_calibration_metadata(onnx_path: Path, value: str | None) -> None:
    """Rewrite (or, with None, drop) the ``calibration`` entry of the file's metadata."""
    proto = onnx.load_model(str(onnx_path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != "calibration"]
    del proto.metadata_props[:]
    for key, text in kept + ([("calibration", value)] if value is not None else []):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, text
    onnx.save_model(proto, str(onnx_path))


def _refusal(run: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        load_models([run], engine="onnx", onnx_cache=None)
    message = str(refused.value)
    assert "\n" not in message
    assert str(run / "model.onnx") in message and str(run / "calibration.json") in message
    assert f"export it again with `medlens export {run}`" in message
    return message


@pytest.mark.parametrize("run_fixture", ["pneumonia_run", "drive_run"])
def test_a_model_onnx_recording_another_calibration_stops_the_start_naming_both_files(
    run_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
):
    run = _exported_copy(request.getfixturevalue(run_fixture), tmp_path)
    recorded = json.loads(onnx_metadata(run / "model.onnx")["calibration"])
    assert recorded["method"] == "temperature" and recorded["temperature"] != 1.0
    # agreeing files: the run's own model.onnx is served (no start-up export: no cache given)
    assert load_models([run], engine="onnx", onnx_cache=None)[run.name].engine == "onnx"
    other = json.dumps({"method": "temperature", "temperature": 1.0})
    _set_calibration_metadata(run / "model.onnx", other)
    message = _refusal(run)
    assert f"records calibration {other}, but" in message
    assert f"holds {json.dumps(recorded)};" in message  # what calibration.json holds
    # the torch engine does not read model.onnx and still starts
    assert load_models([run], engine="torch")[run.name].engine == "torch"


def test_a_model_onnx_recording_no_calibration_is_refused_for_a_calibrated_run(
    pneumonia_run: Path, tmp_path: Path
):
    run = _exported_copy(pneumonia_run, tmp_path)
    _set_calibration_metadata(run / "model.onnx", None)
    assert "records no calibration, but" in _refusal(run)
    _set_calibration_metadata(run / "model.onnx", "{not json")
    assert "records an unreadable calibration, but" in _refusal(run)


def test_an_int8_file_recording_another_calibration_stops_the_start(
    pneumonia_run: Path, tmp_path: Path
):
    # the int8 file is checked as model.onnx is (a copy of the float graph stands in for the
    # quantised one: the check reads the metadata before any session is made)
    run = _exported_copy(pneumonia_run, tmp_path)
    int8 = run / "model.int8.onnx"
    shutil.copyfile(run / "model.onnx", int8)
    other = json.dumps({"method": "temperature", "temperature": 1.0})
    _set_calibration_metadata(int8, other)
    with pytest.raises(ConfigError) as refused:
        load_models([run], engine="onnx-int8", onnx_cache=None)
    message = str(refused.value)
    assert f"{int8} records calibration {other}, but {run / 'calibration.json'} holds" in message
    assert f"export it again with `medlens export {run} --quantize int8`" in message
    # an int8 file made before its note moved to int8_calibration records no calibrator
    _set_calibration_metadata(int8, "64 images of the training split (seed 0)")
    with pytest.raises(ConfigError, match="records an unreadable calibration"):
        load_models([run], engine="onnx-int8", onnx_cache=None)
