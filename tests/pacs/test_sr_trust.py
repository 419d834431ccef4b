"""The DICOM SR says whether to refer the case, with the band and the out-of-distribution
score (Basic Text SR: TEXT items); a referred case's Finding is "refer", as the decision of
``medlens predict`` is, and the model's class stays in an item of its own. The Grad-CAM
capture of a referred case says so."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from medlens.inference.decide import RunPredictor
from medlens.inference.loaded_run import load_run
from medlens.pacs.results import (
    OVERLAY,
    REPORT,
    Scratch,
    model_identity,
    overlay_caption,
    results_for_images,
)
from medlens.pacs.sr import ClassificationFinding, ModelIdentity, classification_report

from .secondary_capture import secondary_capture


def _source() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "P-1", "Chest^Test", "OT"
    return ds


def _texts(sr: pydicom.Dataset, meaning: str) -> list[str]:
    return [
        str(item.TextValue)
        for item in sr.ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == meaning
    ]


def test_the_sr_records_the_referral_band_and_ood_score() -> None:
    finding = ClassificationFinding(
        probabilities={"normal": 0.3, "pneumonia": 0.7},
        predicted_class="pneumonia",
        threshold=0.6,
        refer_reason="out_of_distribution",
        refer_band=(0.55, 0.75),
        ood_score=(120.5, 80.25),
    )
    model = ModelIdentity("small_cnn", "pneumonia", "0" * 64)
    sr = classification_report([_source()], finding, model)
    assert _texts(sr, "Refer to a human reader") == [
        "refer to a human reader (out of distribution)"
    ]
    assert _texts(sr, "Refer band") == ["pneumonia probability in [0.550000, 0.750000)"]
    assert _texts(sr, "Out-of-distribution score") == ["120.5000 (flagged above 80.2500)"]
    assert finding.decision == "refer"
    assert _texts(sr, "Finding") == ["refer"]  # not the class, as predict's decision
    assert _texts(sr, "Model's class") == ["pneumonia"]  # the model's leaning, kept
    assert overlay_caption(finding) == (
        "Referred (out of distribution) - Grad-CAM for pneumonia (p = 0.70)"
    )


def test_a_case_kept_says_no_referral_and_a_run_without_them_adds_nothing_else() -> None:
    finding = ClassificationFinding({"a": 0.2, "b": 0.5, "c": 0.3}, "b", None)
    sr = classification_report([_source()], finding, ModelIdentity("m", "r", "1" * 64))
    assert _texts(sr, "Refer to a human reader") == ["no referral"]
    assert _texts(sr, "Refer band") == [] and _texts(sr, "Out-of-distribution score") == []
    assert _texts(sr, "Finding") == ["b"] and _texts(sr, "Model's class") == ["b"]
    assert overlay_caption(finding) == "Grad-CAM for b (p = 0.50)"


def _chest_file(pixels: np.ndarray, folder: Path) -> Path:
    """A real 28 px radiograph as a grey Secondary Capture file."""
    path = folder / "chest.dcm"
    path.write_bytes(secondary_capture(pixels))
    return path


@pytest.mark.parametrize("reason", ["uncertain", "out_of_distribution"])
def test_a_referred_radiograph_gets_refer_in_its_sr_and_capture(
    reason: str,
    trust_runs: dict[str, Path],
    pneumonia_test_images: np.ndarray,
    tmp_path: Path,
) -> None:
    run = load_run(trust_runs[reason])
    file = _chest_file(pneumonia_test_images[0], tmp_path)
    (tmp_path / "scratch").mkdir()
    made = results_for_images(run, model_identity(run), [file], Scratch(tmp_path / "scratch"))
    assert made.skipped == []
    by_kind = {obj.kind: obj for obj in made.objects}
    sr = pydicom.dcmread(io.BytesIO(by_kind[REPORT].data))
    overlay = pydicom.dcmread(io.BytesIO(by_kind[OVERLAY].data))

    predictor = RunPredictor(run)
    offline = predictor.decisions([pneumonia_test_images[0][None].astype(np.float32) / 255])
    predicted = run.class_names[int(offline.preds[0])]
    assert _texts(sr, "Finding") == ["refer"]
    assert _texts(sr, "Model's class") == [predicted]
    assert _texts(sr, "Refer to a human reader")[0].startswith("refer to a human reader (")
    assert by_kind[REPORT].finding is not None
    assert by_kind[REPORT].finding.decision == "refer"
    p = offline.probs[0][int(offline.preds[0])]
    # the capture's caption (its burned-in title) leads with the referral
    assert overlay.DerivationDescription.startswith(
        f"Referred ({offline.reason(0).replace('_', ' ')}) - "
        f"Grad-CAM for {predicted} (p = {p:.2f}) by "
    )
