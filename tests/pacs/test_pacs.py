"""PACS round trips with a real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``).

Each module-scoped server runs on free loopback ports with a generated configuration,
database and password (``LocalOrthanc``). Real images go in (the 3-slice CT, a
PneumoniaMNIST radiograph as a Secondary Capture), tiny real runs process them, and what
Orthanc then holds is fetched back with plain HTTP calls and checked against the source and
against the same model applied locally.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import httpx
import numpy as np
import PIL.Image
import pydicom
import pytest
from pydicom.dataset import Dataset

from medlens.data.dicom import read_dicom_file
from medlens.data.dicom_seg import read_dicom_seg
from medlens.data.dicom_series import read_dicom_series
from medlens.errors import ConfigError, InputError, MedlensError
from medlens.inference.decide import RunPredictor
from medlens.inference.loaded_run import load_run, predict_arrays
from medlens.inference.segment import predict_mask
from medlens.pacs.commands import (
    PacsError,
    RetryPolicy,
    orthanc_auth,
    pacs_process_command,
    pacs_watch_command,
    process_study,
    watch,
)
from medlens.pacs.local_orthanc import LocalOrthanc, free_loopback_port
from medlens.pacs.multipart import decode_multipart_related, encode_multipart_related
from medlens.pacs.sr import BasicTextSR
from medlens.pacs.watch_state import WatchState, load_watch_state, save_watch_state

from .secondary_capture import secondary_capture

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


# -- servers and runs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pacs() -> Iterator[LocalOrthanc]:
    """Orthanc with the DICOMweb plugin (the Debian package ships it)."""
    with LocalOrthanc(stable_age_s=1) as server:
        assert server.has_dicomweb, "orthanc-dicomweb is not installed"
        yield server


@pytest.fixture(scope="module")
def plain_pacs() -> Iterator[LocalOrthanc]:
    """Orthanc without DICOMweb: images travel through its REST API."""
    with LocalOrthanc(stable_age_s=1, dicomweb=False) as server:
        yield server


# ``ct_run`` (a 3D FCN on the real CT), ``drive_run`` (a 2D U-Net on DRIVE),
# ``pneumonia_run`` (small_cnn on PneumoniaMNIST), ``drive_dir`` and
# ``pneumonia_test_images`` come from tests/serve/conftest.py, shared with the service tests.


@pytest.fixture
def chest_images(pneumonia_test_images: np.ndarray) -> np.ndarray:
    """Real 28x28 uint8 test radiographs."""
    return pneumonia_test_images[:3]


# -- helpers: talking to Orthanc without medlens' client ------------------------------------


def http(server: LocalOrthanc) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=server.auth, timeout=30)


def upload(server: LocalOrthanc, files: list[bytes]) -> str:
    """POST each file to /instances; the Orthanc id of their (one) study."""
    with http(server) as client:
        studies = set()
        for data in files:
            answer = client.post("/instances", content=data).raise_for_status().json()
            studies.add(answer["ParentStudy"])
    assert len(studies) == 1
    return studies.pop()


def fetch_study(server: LocalOrthanc, study_id: str) -> list[Dataset]:
    """Every instance Orthanc holds in the study, as pydicom datasets."""
    with http(server) as client:
        ids = [i["ID"] for i in client.get(f"/studies/{study_id}/instances").json()]
        return [
            pydicom.dcmread(io.BytesIO(client.get(f"/instances/{i}/file").content)) for i in ids
        ]


def chest_secondary_capture(pixels: np.ndarray, patient_id: str) -> bytes:
    """A real 28 px radiograph as a grey Secondary Capture in a study of its own."""
    return secondary_capture(pixels, patient_id, "MONOCHROME2")


def sr_texts(sr: Dataset, meaning: str) -> list[str]:
    return [
        str(item.TextValue)
        for item in sr.ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == meaning
    ]


def wait_for_stable_study(server: LocalOrthanc, study_id: str, after: int = 0) -> int:
    """Block until Orthanc logs a StableStudy change for the study after ``after``; its Seq."""
    deadline = time.monotonic() + 20
    with http(server) as client:
        while time.monotonic() < deadline:
            changes = client.get("/changes", params={"since": after, "limit": 1000}).json()
            for change in changes["Changes"]:
                if change["ChangeType"] == "StableStudy" and change["ID"] == study_id:
                    return int(change["Seq"])
            time.sleep(0.2)
    raise AssertionError(f"study {study_id} did not become stable")


# -- process_study ------------------------------------------------------------------------------


def test_a_ct_study_gets_a_dicom_seg_through_dicomweb(
    pacs: LocalOrthanc, ct_run: Path, ct_dir: Path, tmp_path: Path
) -> None:
    ct_files = sorted(ct_dir.glob("*.dcm"))
    ct = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    study_id = upload(pacs, [p.read_bytes() for p in ct_files])

    result = process_study(pacs.url, ct.StudyInstanceUID, ct_run, auth=pacs.auth)

    assert result.transport == "dicomweb" and result.task == "segmentation"
    assert [obj.kind for obj in result.stored] == ["segmentation"]
    stored = fetch_study(pacs, study_id)
    segs = [ds for ds in stored if ds.SOPClassUID == SEGMENTATION_STORAGE]
    assert len(stored) == 4 and len(segs) == 1  # the 3 CT slices and the SEG, one study
    seg = segs[0]
    assert seg.SOPInstanceUID == result.stored[0].sop_instance_uid
    assert seg.StudyInstanceUID == ct.StudyInstanceUID
    assert seg.SeriesInstanceUID != ct.SeriesInstanceUID
    assert (seg.PatientID, seg.Manufacturer) == (ct.PatientID, "medlens")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID
    referenced = {
        str(r.ReferencedSOPInstanceUID)
        for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    ct_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ct_files}
    assert referenced <= ct_uids
    hd.seg.Segmentation.from_dataset(seg)  # highdicom accepts what Orthanc gives back

    # the mask on the CT's grid is what the same model predicts locally
    local = tmp_path / "fetched_seg.dcm"
    seg.save_as(local, enforce_file_format=True)
    series = read_dicom_series(ct_dir)
    mask = read_dicom_seg(local, series=series)
    expected = predict_mask(load_run(ct_run), series)
    assert mask.array.shape == (1, 3, 512, 512)
    np.testing.assert_array_equal(mask.array[0], expected == 1)
    # each frame lies where the CT slice it derives from lies (LPS mm)
    positions = {
        str(ds.SOPInstanceUID): [float(v) for v in ds.ImagePositionPatient]
        for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in ct_files)
    }
    for frame in seg.PerFrameFunctionalGroupsSequence:
        derived = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        plane = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(plane, positions[str(derived)], atol=1e-3)


def test_a_radiograph_gets_a_basic_text_sr_and_a_gradcam_capture_through_rest(
    pacs: LocalOrthanc, pneumonia_run: Path, chest_images: np.ndarray
) -> None:
    study_id = upload(pacs, [chest_secondary_capture(chest_images[0], "P-1")])
    source = fetch_study(pacs, study_id)[0]

    result = process_study(
        pacs.url, source.StudyInstanceUID, pneumonia_run, auth=pacs.auth, dicomweb="off"
    )

    assert result.transport == "rest"
    assert sorted(obj.kind for obj in result.stored) == ["overlay", "report"]
    ours = [ds for ds in fetch_study(pacs, study_id) if ds.Manufacturer == "medlens"]
    assert sorted(ds.SOPClassUID for ds in ours) == sorted([BASIC_TEXT_SR, SECONDARY_CAPTURE])
    sr, overlay = sorted(ours, key=lambda ds: ds.SOPClassUID != BASIC_TEXT_SR)

    # probabilities and decision: the model applied locally to the npz pixels
    run = load_run(pneumonia_run)
    expected = predict_arrays(run, [chest_images[0][None].astype(np.float32) / 255])[0]
    reported = dict(text.split(": ") for text in sr_texts(sr, "Class probability"))
    assert list(reported) == run.class_names
    for name, p in zip(run.class_names, expected, strict=True):
        assert float(reported[name]) == pytest.approx(float(p), abs=2e-6)
    decided = run.class_names[int(expected[1] >= run.threshold)]
    predictor = RunPredictor(run)
    offline = predictor.decisions([chest_images[0][None].astype(np.float32) / 255])
    assert sr_texts(sr, "Finding") == [offline.decision(0, run.class_names)]  # or "refer"
    assert sr_texts(sr, "Model's class") == [decided]
    report = next(obj for obj in result.stored if obj.kind == "report")
    assert (report.decision, report.predicted_class) == (sr_texts(sr, "Finding")[0], decided)
    assert float(sr_texts(sr, "Decision threshold")[0]) == pytest.approx(run.threshold, abs=1e-6)
    weights = hashlib.sha256((pneumonia_run / "model.pt").read_bytes()).hexdigest()
    assert sr_texts(sr, "Model weights SHA-256") == [weights]
    assert sr_texts(sr, "Algorithm Name") == [f"small_cnn (run {run.config.name})"]

    # both results in the source's study, patient module copied, references to the source
    for ds in (sr, overlay):
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert (ds.PatientID, ds.PatientName, ds.PatientSex) == ("P-1", "Chest^Test", "F")
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert (
        evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == source.SOPInstanceUID
    )
    images = [item for item in sr.ContentSequence if item.ValueType == "IMAGE"]
    assert images[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert overlay.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert overlay.PhotometricInterpretation == "RGB"
    assert overlay.pixel_array.ndim == 3 and overlay.pixel_array.shape[2] == 3
    assert overlay.pixel_array.std() > 0  # a rendered figure, not a blank frame


def test_each_image_of_a_2d_segmentation_run_gets_its_own_seg(
    pacs: LocalOrthanc, drive_run: Path, drive_dir: Path, tmp_path: Path
) -> None:
    pixels = np.asarray(PIL.Image.open(drive_dir / "test" / "images" / "01_test.tif"))
    data = secondary_capture(pixels, "D-1", "RGB")
    study_id = upload(pacs, [data])
    source = pydicom.dcmread(io.BytesIO(data))

    result = process_study(pacs.url, source.StudyInstanceUID, drive_run, auth=pacs.auth)

    assert [obj.kind for obj in result.stored] == ["segmentation"]
    segs = [ds for ds in fetch_study(pacs, study_id) if ds.SOPClassUID == SEGMENTATION_STORAGE]
    assert len(segs) == 1
    seg = segs[0]
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == "D-1"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    # one frame on the radiograph's own 584 x 565 grid: the mask the model gives locally
    (tmp_path / "source.dcm").write_bytes(data)
    expected = predict_mask(load_run(drive_run), read_dicom_file(tmp_path / "source.dcm"))
    frames = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(
        [source.SOPInstanceUID], assert_missing_frames_are_empty=True
    )
    assert frames.shape[:3] == (1, 584, 565)
    np.testing.assert_array_equal(frames[0, ..., 0] > 0, expected == 1)


def test_a_study_that_is_not_there_is_one_clear_error(
    pacs: LocalOrthanc, pneumonia_run: Path
) -> None:
    with pytest.raises(InputError, match="study 1.2.3.4.5: not found in Orthanc"):
        process_study(pacs.url, "1.2.3.4.5", pneumonia_run, auth=pacs.auth)
    user, password = pacs.auth
    with pytest.raises(InputError, match="study 1.2.3.4.5: not found in Orthanc"):
        pacs_process_command(pacs.url, "1.2.3.4.5", pneumonia_run, user, password, "off")
    with pytest.raises(ConfigError, match="--dicomweb"):
        pacs_process_command(pacs.url, "1.2.3.4.5", pneumonia_run, user, password, "yes")
    with pytest.raises(ConfigError, match="--poll"):
        pacs_watch_command(pacs.url, pneumonia_run, "state.json", poll_s=0)


def test_a_study_without_a_usable_series_is_one_clear_error(
    pacs: LocalOrthanc,
    ct_run: Path,
    pneumonia_run: Path,
    chest_images: np.ndarray,
    ct_dir: Path,
) -> None:
    data = chest_secondary_capture(chest_images[1], "P-2")
    upload(pacs, [data])
    uid = pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID
    with pytest.raises(InputError, match="no series a 3D segmentation run can take; it holds: OT"):
        process_study(pacs.url, uid, ct_run, auth=pacs.auth)
    # CT slices are images, but not the 28 px ones the 2D run was trained on
    ct_uid = pydicom.dcmread(next(ct_dir.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    upload(pacs, [p.read_bytes() for p in sorted(ct_dir.glob("*.dcm"))])
    with pytest.raises(InputError, match="no series could be processed: .*512, 512"):
        process_study(pacs.url, ct_uid, pneumonia_run, auth=pacs.auth)


def test_orthanc_down_or_a_wrong_password_is_one_clear_error(
    pacs: LocalOrthanc, pneumonia_run: Path, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_loopback_port()}"
    quick = RetryPolicy(attempts=2, first_wait_s=0.01)  # the default waits 3.5 s in all
    with pytest.raises(PacsError, match="Orthanc does not answer") as info:
        process_study(down, "1.2.3", pneumonia_run, retry=quick)
    assert isinstance(info.value, MedlensError) and "\n" not in str(info.value)
    with pytest.raises(PacsError, match="rejected the user name or password"):
        process_study(pacs.url, "1.2.3", pneumonia_run, auth=(pacs.auth[0], "wrong"))
    with pytest.raises(PacsError, match="does not answer"):
        watch(down, pneumonia_run, tmp_path / "state.json", once=True, retry=quick)


def test_dicomweb_on_needs_the_plugin(plain_pacs: LocalOrthanc, pneumonia_run: Path) -> None:
    with pytest.raises(PacsError, match="DICOMweb plugin is not loaded"):
        process_study(plain_pacs.url, "1.2.3", pneumonia_run, auth=plain_pacs.auth, dicomweb="on")


# -- watch ----------------------------------------------------------------------------------


def test_watch_processes_each_new_study_once_and_resumes_from_its_state(
    plain_pacs: LocalOrthanc, pneumonia_run: Path, chest_images: np.ndarray, tmp_path: Path
) -> None:
    state = tmp_path / "watch.json"
    first = upload(plain_pacs, [chest_secondary_capture(chest_images[0], "W-1")])
    lines: list[str] = []
    report = watch(
        plain_pacs.url,
        pneumonia_run,
        state,
        poll_s=0.2,
        stop_after=1,
        auth=plain_pacs.auth,
        timeout_s=30,
        on_event=lines.append,
    )
    assert len(report.processed) == 1 and report.processed[0].transport == "rest"
    first_uid = report.processed[0].study_instance_uid
    assert first_uid == fetch_study(plain_pacs, first)[0].StudyInstanceUID
    first_seq = json.loads(state.read_text())["last_change"]
    assert first_seq == report.last_change > 0 and lines[0].startswith(f"study {first_uid}")

    # our results make the study stable again; a second study arrives meanwhile
    wait_for_stable_study(plain_pacs, first, after=first_seq)
    second = upload(plain_pacs, [chest_secondary_capture(chest_images[2], "W-2")])
    wait_for_stable_study(plain_pacs, second, after=first_seq)

    again = watch(plain_pacs.url, pneumonia_run, state, auth=plain_pacs.auth, once=True)
    assert [r.study_instance_uid for r in again.processed] == [
        fetch_study(plain_pacs, second)[0].StudyInstanceUID
    ]
    # only the changes after the saved index were read: the first study's own StableStudy
    # change is behind it, its second one (from our results) is recognised and passed over
    assert again.passed_over == [(first_uid, "holds medlens results already")]
    reports = [ds for ds in fetch_study(plain_pacs, first) if ds.SOPClassUID == BASIC_TEXT_SR]
    assert len(reports) == 1
    assert load_watch_state(state, plain_pacs.url).studies_processed == 2


# -- small parts --------------------------------------------------------------------------------


def test_watch_state_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_watch_state(path, "http://a").last_change == 0
    save_watch_state(path, WatchState("http://a", last_change=17, studies_processed=3))
    assert load_watch_state(path, "http://a/") == WatchState("http://a", 17, 3)
    with pytest.raises(InputError, match="records changes of http://a, not http://b"):
        load_watch_state(path, "http://b")
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a medlens watch state"):
        load_watch_state(path, "http://a")


def test_multipart_round_trip_keeps_binary_parts_intact(rng: np.random.Generator) -> None:
    parts = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() + b"\r\n--x\r\n" for n in (5, 300)]
    body, content_type = encode_multipart_related(parts)
    assert decode_multipart_related(body, content_type) == parts


def test_basic_text_sr_refuses_numeric_content(ct_dir: Path) -> None:
    source = pydicom.dcmread(next(ct_dir.glob("*.dcm")), stop_before_pixels=True)
    root = hd.sr.ContainerContentItem(hd.sr.CodedConcept("18748-4", "LN", "Report"))
    root.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.NumContentItem(
                hd.sr.CodedConcept("1", "99X", "p"),
                0.5,
                hd.sr.CodedConcept("1", "UCUM", "no units"),
                relationship_type="CONTAINS",
            )
        ]
    )
    with pytest.raises(ValueError, match="does not allow NUM"):
        BasicTextSR(
            [source],
            root,
            series_instance_uid=hd.UID(),
            series_number=1,
            sop_instance_uid=hd.UID(),
            instance_number=1,
        )


def test_credentials_come_in_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDLENS_ORTHANC_USER", raising=False)
    monkeypatch.delenv("MEDLENS_ORTHANC_PASSWORD", raising=False)
    assert orthanc_auth(None, None) is None
    assert orthanc_auth("u", "p") == ("u", "p")
    monkeypatch.setenv("MEDLENS_ORTHANC_PASSWORD", "secret")
    assert orthanc_auth("u", None) == ("u", "secret")
    with pytest.raises(MedlensError, match="without a user"):
        orthanc_auth(None, None)
