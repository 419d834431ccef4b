"""A real Orthanc holding hostile data, and runs killed in the middle of an upload.

Each server runs on free loopback ports (``LocalOrthanc``). The crafted inputs are built
here: a radiograph whose SOPInstanceUID walks out of a folder, one whose Manufacturer claims
to be medlens. A kill is a ``BaseException`` raised while Orthanc is being sent the results;
then the same command runs again.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medlens.errors import InputError
from medlens.pacs.client import OrthancClient
from medlens.pacs.commands import process_study, watch
from medlens.pacs.local_orthanc import LocalOrthanc
from medlens.pacs.watch_state import WatchState, load_watch_state, save_watch_state

from .secondary_capture import secondary_capture

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


class Killed(BaseException):
    """What a kill looks like from inside: nothing catches it."""


@pytest.fixture(scope="module")
def pacs() -> Iterator[LocalOrthanc]:
    with LocalOrthanc(stable_age_s=1) as server:
        assert server.has_dicomweb, "orthanc-dicomweb is not installed"
        yield server


@pytest.fixture(scope="module")
def plain_pacs() -> Iterator[LocalOrthanc]:
    with LocalOrthanc(stable_age_s=1, dicomweb=False) as server:
        yield server


@pytest.fixture
def chest(pneumonia_test_images: np.ndarray) -> np.ndarray:
    return pneumonia_test_images[3]


def radiograph(
    pixels: np.ndarray,
    patient_id: str,
    manufacturer: str = "PneumoniaMNIST",
    sop_instance_uid: str | None = None,
) -> bytes:
    """A real 28 px radiograph as a Secondary Capture in a study of its own; a crafted
    SOPInstanceUID is written as given (pydicom only warns)."""
    return secondary_capture(
        pixels, patient_id, manufacturer=manufacturer, sop_instance_uid=sop_instance_uid
    )


def http(server: LocalOrthanc) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=server.auth, timeout=30)


def upload(server: LocalOrthanc, data: bytes) -> tuple[str, Dataset]:
    """The Orthanc id of the file's study, and the file's header."""
    with http(server) as client:
        answer = client.post("/instances", content=data).raise_for_status().json()
    return answer["ParentStudy"], pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def fetch_study(server: LocalOrthanc, study_id: str) -> list[Dataset]:
    with http(server) as client:
        ids = [i["ID"] for i in client.get(f"/studies/{study_id}/instances").json()]
        return [
            pydicom.dcmread(io.BytesIO(client.get(f"/instances/{i}/file").content)) for i in ids
        ]


def by_class(datasets: list[Dataset]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ds in datasets:
        counts[str(ds.SOPClassUID)] = counts.get(str(ds.SOPClassUID), 0) + 1
    return counts


def last_change(server: LocalOrthanc) -> int:
    with http(server) as client:
        return int(client.get("/changes", params={"last": ""}).json()["Last"])


def wait_for_stable_study(server: LocalOrthanc, study_id: str, after: int) -> int:
    deadline = time.monotonic() + 20
    with http(server) as client:
        while time.monotonic() < deadline:
            changes = client.get("/changes", params={"since": after, "limit": 1000}).json()
            for change in changes["Changes"]:
                if change["ChangeType"] == "StableStudy" and change["ID"] == study_id:
                    return int(change["Seq"])
            time.sleep(0.2)
    raise AssertionError(f"study {study_id} did not become stable")


def state_after(server: LocalOrthanc, path: Path, seq: int) -> Path:
    """A watch state that starts after change ``seq`` (other tests' studies are behind it)."""
    save_watch_state(path, WatchState(server.url, last_change=seq))
    return path


def kill_on_second_post(monkeypatch: pytest.MonkeyPatch) -> None:
    """REST uploads: the first result reaches Orthanc, then the process dies."""
    real_send = OrthancClient.send
    posts = []

    def send(self: OrthancClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if (method, path) == ("POST", "/instances"):
            posts.append(path)
            if len(posts) == 2:
                raise Killed
        return real_send(self, method, path, **kwargs)

    monkeypatch.setattr(OrthancClient, "send", send)


def kill_inside_stow(monkeypatch: pytest.MonkeyPatch) -> None:
    """DICOMweb uploads: the first file of the STOW-RS request is stored, then the process
    dies before the rest."""
    real_store = OrthancClient.store

    def store(self: OrthancClient, files: list[bytes]) -> None:
        real_store(self, files[:1])
        raise Killed

    monkeypatch.setattr(OrthancClient, "store", store)


# -- UIDs are data --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("dicomweb", ["off", "on"])
def test_a_sop_instance_uid_that_walks_out_of_the_temp_folder_is_refused(
    pacs: LocalOrthanc,
    plain_pacs: LocalOrthanc,
    pneumonia_run: Path,
    chest: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dicomweb: str,
) -> None:
    server = pacs if dicomweb == "on" else plain_pacs
    hostile = "1.2/../../../escaped"
    study_id, source = upload(server, radiograph(chest, "U-1", sop_instance_uid=hostile))
    temp = tmp_path / "a" / "b"
    temp.mkdir(parents=True)
    monkeypatch.setattr("tempfile.tempdir", str(temp))

    try:
        process_study(
            server.url, source.StudyInstanceUID, pneumonia_run, auth=server.auth, dicomweb=dicomweb
        )
    except InputError as exc:
        refused: InputError | None = exc
    else:
        refused = None

    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [], f"files left behind or written outside the temp folder: {written}"
    assert refused is not None and "\n" not in str(refused)
    assert "SOPInstanceUID '1.2/../../../escaped' is not a DICOM UID" in str(refused)
    assert by_class(fetch_study(server, study_id)) == {SECONDARY_CAPTURE: 1}  # nothing stored


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_a_downloaded_file_with_a_uid_that_is_no_uid_is_left_out(
    pneumonia_run: Path, chest: np.ndarray, tmp_path: Path
) -> None:
    """The server's listing may differ from the file: the file's own UIDs are checked too."""
    from medlens.inference.loaded_run import load_run
    from medlens.pacs.results import Scratch, model_identity, results_for_images

    run = load_run(pneumonia_run)
    work = tmp_path / "work"
    work.mkdir()
    downloaded = tmp_path / "work" / "00000.dcm"
    downloaded.write_bytes(radiograph(chest, "U-2", sop_instance_uid="1.2/../../../escaped"))

    made = results_for_images(run, model_identity(run), [downloaded], Scratch(work))

    assert made.objects == [] and len(made.skipped) == 1
    assert "SOPInstanceUID '1.2/../../../escaped' is not a DICOM UID" in made.skipped[0]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["00000.dcm"]


# -- re-runs after a kill, recognised results ----------------------------------------------


def test_process_killed_mid_upload_then_rerun_stores_each_result_once(
    plain_pacs: LocalOrthanc,
    pneumonia_run: Path,
    chest: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study_id, source = upload(plain_pacs, radiograph(chest, "K-1"))
    study_uid = source.StudyInstanceUID
    with monkeypatch.context() as patch:
        kill_on_second_post(patch)
        with pytest.raises(Killed):
            process_study(plain_pacs.url, study_uid, pneumonia_run, auth=plain_pacs.auth)
    assert by_class(fetch_study(plain_pacs, study_id)) == {SECONDARY_CAPTURE: 1, BASIC_TEXT_SR: 1}

    rerun = process_study(plain_pacs.url, study_uid, pneumonia_run, auth=plain_pacs.auth)

    assert [obj.kind for obj in rerun.stored] == ["overlay"]
    assert len(rerun.already_stored) == 1 and "1 already there" in rerun.summary()
    held = fetch_study(plain_pacs, study_id)
    assert by_class(held) == {SECONDARY_CAPTURE: 2, BASIC_TEXT_SR: 1}

    # the same model on the same source: the same UIDs, derived from weights and source
    from medlens.inference.onnx import weights_sha256
    from medlens.pacs.uids import result_instance_uid, result_series_uid

    weights = weights_sha256(pneumonia_run)
    series, sop = str(source.SeriesInstanceUID), str(source.SOPInstanceUID)
    sr = next(ds for ds in held if ds.SOPClassUID == BASIC_TEXT_SR)
    overlay = next(ds for ds in held if ds.get("Manufacturer") == "medlens" and ds is not sr)
    assert sr.SOPInstanceUID == result_instance_uid(weights, "report", series, sop)
    assert sr.SeriesInstanceUID == result_series_uid(weights, "report", series)
    assert overlay.SOPInstanceUID == result_instance_uid(weights, "overlay", series, sop)
    assert rerun.stored[0].sop_instance_uid == overlay.SOPInstanceUID

    # everything is there now: nothing is made or stored, the overlay is not taken as input
    again = process_study(plain_pacs.url, study_uid, pneumonia_run, auth=plain_pacs.auth)
    assert again.stored == [] and again.skipped == []
    assert sorted(again.already_stored) == sorted([sr.SOPInstanceUID, overlay.SOPInstanceUID])
    assert "stored nothing new" in again.summary()
    assert by_class(fetch_study(plain_pacs, study_id)) == {SECONDARY_CAPTURE: 2, BASIC_TEXT_SR: 1}


def test_watch_killed_mid_upload_stores_the_missing_results_when_restarted(
    pacs: LocalOrthanc,
    pneumonia_run: Path,
    chest: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = state_after(pacs, tmp_path / "watch.json", last_change(pacs))
    study_id, source = upload(pacs, radiograph(chest, "K-2"))
    seq = wait_for_stable_study(pacs, study_id, after=0)
    with monkeypatch.context() as patch:
        kill_inside_stow(patch)
        with pytest.raises(Killed):
            watch(pacs.url, pneumonia_run, state, auth=pacs.auth, once=True)
    assert by_class(fetch_study(pacs, study_id)) == {SECONDARY_CAPTURE: 1, BASIC_TEXT_SR: 1}
    assert load_watch_state(state, pacs.url).last_change < seq  # not marked done
    wait_for_stable_study(pacs, study_id, after=seq)  # the partial upload made it stable again

    report = watch(pacs.url, pneumonia_run, state, auth=pacs.auth, once=True)

    assert [r.study_instance_uid for r in report.processed] == [source.StudyInstanceUID]
    assert [obj.kind for obj in report.processed[0].stored] == ["overlay"]
    assert by_class(fetch_study(pacs, study_id)) == {SECONDARY_CAPTURE: 2, BASIC_TEXT_SR: 1}
    assert load_watch_state(state, pacs.url).last_change >= seq


def test_a_spoofed_manufacturer_is_processed_and_a_real_result_is_not(
    plain_pacs: LocalOrthanc,
    pneumonia_run: Path,
    chest: np.ndarray,
    tmp_path: Path,
) -> None:
    state = state_after(plain_pacs, tmp_path / "watch.json", last_change(plain_pacs))
    study_id, source = upload(plain_pacs, radiograph(chest, "S-1", manufacturer="medlens"))
    seq = wait_for_stable_study(plain_pacs, study_id, after=0)

    report = watch(plain_pacs.url, pneumonia_run, state, auth=plain_pacs.auth, once=True)

    assert [r.study_instance_uid for r in report.processed] == [source.StudyInstanceUID]
    assert sorted(obj.kind for obj in report.processed[0].stored) == ["overlay", "report"]
    uid = source.StudyInstanceUID
    assert [reason for study, reason in report.passed_over if study == uid] == []
    # our results make the study stable again: that change is recognised and passed over
    wait_for_stable_study(plain_pacs, study_id, after=seq)
    again = watch(plain_pacs.url, pneumonia_run, state, auth=plain_pacs.auth, once=True)
    assert again.processed == []
    assert [reason for study, reason in again.passed_over if study == uid] == [
        "holds medlens results already"
    ]
    assert by_class(fetch_study(plain_pacs, study_id)) == {SECONDARY_CAPTURE: 2, BASIC_TEXT_SR: 1}
