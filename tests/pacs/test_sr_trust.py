"""The DICOM SR says whether to refer the case, with the band and the out-of-distribution
score (Basic Text SR: TEXT items)."""

from __future__ import annotations

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from medlens.pacs.sr import ClassificationFinding, ModelIdentity, classification_report


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
        decision="pneumonia",
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
    assert _texts(sr, "Finding") == ["pneumonia"]


def test_a_case_kept_says_no_referral_and_a_run_without_them_adds_nothing_else() -> None:
    finding = ClassificationFinding({"a": 0.2, "b": 0.5, "c": 0.3}, "b", None)
    sr = classification_report([_source()], finding, ModelIdentity("m", "r", "1" * 64))
    assert _texts(sr, "Refer to a human reader") == ["no referral"]
    assert _texts(sr, "Refer band") == [] and _texts(sr, "Out-of-distribution score") == []
