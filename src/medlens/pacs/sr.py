"""A classification result as a DICOM Basic Text SR, filed in the study of its source images.

highdicom builds Enhanced and Comprehensive SR; ``BasicTextSR`` is the same machinery with
the Basic Text SR SOP class (1.2.840.10008.5.1.4.1.1.88.11), which allows no numeric
(``NUM``) or spatial coordinate content items: the probabilities are therefore ``TEXT``
items of the form ``"<class>: <probability>"``.

The content tree (every item a child of the root by ``CONTAINS``)::

    CONTAINER  (LN 18748-4) Diagnostic Imaging Report
      TEXT     (DCM 111001) Algorithm Name        "<model> (run <name>)"
      TEXT     (DCM 111003) Algorithm Version     "medlens <version>"
      TEXT     (99MEDLENS WEIGHTS-SHA256)         SHA-256 of model.pt
      TEXT     (DCM 121071) Finding               the decision: the class, or "refer" for a
                                                  case referred to a human reader
      TEXT     (99MEDLENS MODEL-CLASS)            the model's class at its threshold (kept
                                                  for a referred case: its leaning)
      TEXT     (99MEDLENS THRESHOLD)              the decision threshold (two classes only)
      TEXT     (99MEDLENS REFER)                  "refer to a human reader (uncertain |
                                                  out of distribution)" or "no referral"
      TEXT     (99MEDLENS REFER-BAND)             "<class 1> probability in [low, high)",
                                                  when the run has a two-class band
      TEXT     (99MEDLENS OOD-SCORE)              "<score> (flagged above <threshold>)",
                                                  when the run has the score
      TEXT     (99MEDLENS CLASS-PROB)             "<class>: <probability>", one per class
                                                  (calibrated)
      IMAGE    (DCM 121322) Source image ...      one per source instance

The source instances are also listed in CurrentRequestedProcedureEvidenceSequence.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr.sop import _SR
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import BasicTextSRStorage

from medlens import __version__
from medlens.trust.decisions import REFER as REFER_DECISION

MEDLENS_SCHEME = "99MEDLENS"
MANUFACTURER = "medlens"
SERIES_DESCRIPTION_PREFIX = "medlens"

DIAGNOSTIC_IMAGING_REPORT = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic Imaging Report")
WEIGHTS_SHA256 = hd.sr.CodedConcept("WEIGHTS-SHA256", MEDLENS_SCHEME, "Model weights SHA-256")
DECISION_THRESHOLD = hd.sr.CodedConcept("THRESHOLD", MEDLENS_SCHEME, "Decision threshold")
MODEL_CLASS = hd.sr.CodedConcept("MODEL-CLASS", MEDLENS_SCHEME, "Model's class")
CLASS_PROBABILITY = hd.sr.CodedConcept("CLASS-PROB", MEDLENS_SCHEME, "Class probability")
REFER = hd.sr.CodedConcept("REFER", MEDLENS_SCHEME, "Refer to a human reader")
REFER_BAND = hd.sr.CodedConcept("REFER-BAND", MEDLENS_SCHEME, "Refer band")
OOD_SCORE = hd.sr.CodedConcept("OOD-SCORE", MEDLENS_SCHEME, "Out-of-distribution score")

_BASIC_TEXT_VALUE_TYPES = {
    "CONTAINER",
    "TEXT",
    "CODE",
    "DATETIME",
    "DATE",
    "TIME",
    "UIDREF",
    "PNAME",
    "COMPOSITE",
    "IMAGE",
    "WAVEFORM",
}
_TYPE2_PATIENT_STUDY = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)


class BasicTextSR(_SR):
    """A Basic Text SR document (see highdicom's ``EnhancedSR`` for the arguments).

    Raises:
        ValueError: the content holds a value type Basic Text SR does not allow (NUM,
            SCOORD, SCOORD3D, TCOORD).
    """

    def __init__(self, evidence: Sequence[Dataset], content: Dataset, **kwargs: object) -> None:
        bad = _disallowed_value_types(content)
        if bad:
            raise ValueError(f"Basic Text SR does not allow {', '.join(sorted(bad))} items")
        super().__init__(
            evidence=evidence,
            content=content,
            sop_class_uid=BasicTextSRStorage,
            **kwargs,  # type: ignore[arg-type]
        )


def _disallowed_value_types(item: Dataset) -> set[str]:
    found = set()
    if "ValueType" in item and item.ValueType not in _BASIC_TEXT_VALUE_TYPES:
        found.add(str(item.ValueType))
    for child in item.get("ContentSequence", []):
        found |= _disallowed_value_types(child)
    return found


@dataclass
class ModelIdentity:
    """What produced a result: recorded in every object medlens stores.

    Attributes:
        name: the model architecture (``small_cnn``, ``fcn``).
        run_name: the run's name in its config.
        weights_sha256: hex SHA-256 of the run's ``model.pt``.
    """

    name: str
    run_name: str
    weights_sha256: str

    @property
    def algorithm_name(self) -> str:
        return f"{self.name} (run {self.run_name})"


@dataclass
class ClassificationFinding:
    """One classification of one image (or volume).

    Attributes:
        probabilities: class name -> probability, in the run's class order.
        predicted_class: the model's class at the run's threshold (arg-max for more
            classes), also for a referred case; ``decision`` is ``refer`` then.
        threshold: the probability of the second class at or above which it is predicted,
            for two-class runs; None for argmax decisions.
        refer_reason: why a human should decide instead (``uncertain``: in the run's refer
            band; ``out_of_distribution``), or None.
        refer_band: ``(low, high)`` of a two-class refer band on the second class's
            probability, or None.
        ood_score: the out-of-distribution score and the threshold above which it is
            flagged, or None for a run without it.
    """

    probabilities: dict[str, float]
    predicted_class: str
    threshold: float | None
    refer_reason: str | None = None
    refer_band: tuple[float, float] | None = None
    ood_score: tuple[float, float] | None = None

    @property
    def decision(self) -> str:
        """The class, or ``refer`` when the case is referred to a human reader (as
        ``medlens predict``'s ``decision`` column)."""
        return REFER_DECISION if self.refer_reason else self.predicted_class

    def trust_texts(self) -> list[tuple[hd.sr.CodedConcept, str]]:
        """The SR's referral, band and out-of-distribution items as (concept, text)."""
        reason = (self.refer_reason or "").replace("_", " ")
        items = [(REFER, f"refer to a human reader ({reason})" if reason else "no referral")]
        if self.refer_band is not None and self.refer_band[1] > self.refer_band[0]:
            second = list(self.probabilities)[1]
            low, high = self.refer_band
            items.append((REFER_BAND, f"{second} probability in [{low:.6f}, {min(high, 1.0):.6f})"))
        if self.ood_score is not None:
            score, threshold = self.ood_score
            items.append((OOD_SCORE, f"{score:.4f} (flagged above {threshold:.4f})"))
        return items


def with_patient_study_defaults(source: Dataset) -> Dataset:
    """A copy of ``source`` with the Type 2 patient/study attributes highdicom copies set
    (empty when the source lacks them)."""
    ds = copy.copy(source)
    for keyword in _TYPE2_PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def classification_report(
    sources: Sequence[Dataset],
    finding: ClassificationFinding,
    model: ModelIdentity,
    series_instance_uid: str | None = None,
    series_number: int = 901,
    instance_number: int = 1,
    sop_instance_uid: str | None = None,
) -> BasicTextSR:
    """A Basic Text SR of ``finding`` on ``sources`` (their headers), in their study.

    Args:
        sources: the classified instances (headers suffice), all of one study; the first
            gives the patient and study modules.
        finding: probabilities, the model's class and the decision (``refer`` for a
            referred case).
        model: the model that produced them.
        series_instance_uid: the SR's series; default a new one.
        series_number: SeriesNumber of the SR series.
        instance_number: InstanceNumber of the SR in its series.
        sop_instance_uid: the SR's SOPInstanceUID; default a new one.

    Returns:
        The SR dataset (Manufacturer "medlens", SeriesDescription "medlens classification
        report"), not yet written anywhere.
    """
    root = hd.sr.ContainerContentItem(DIAGNOSTIC_IMAGING_REPORT)
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items: list[hd.sr.ContentItem] = [
        hd.sr.TextContentItem(codes.DCM.AlgorithmName, model.algorithm_name, contains),
        hd.sr.TextContentItem(codes.DCM.AlgorithmVersion, f"medlens {__version__}", contains),
        hd.sr.TextContentItem(WEIGHTS_SHA256, model.weights_sha256, contains),
        hd.sr.TextContentItem(codes.DCM.Finding, finding.decision, contains),
        hd.sr.TextContentItem(MODEL_CLASS, finding.predicted_class, contains),
    ]
    if finding.threshold is not None:
        items.append(
            hd.sr.TextContentItem(DECISION_THRESHOLD, f"{finding.threshold:.6f}", contains)
        )
    items += [
        hd.sr.TextContentItem(concept, text, contains) for concept, text in finding.trust_texts()
    ]
    items += [
        hd.sr.TextContentItem(CLASS_PROBABILITY, f"{name}: {p:.6f}", contains)
        for name, p in finding.probabilities.items()
    ]
    items += [
        hd.sr.ImageContentItem(
            codes.DCM.SourceImageForImageProcessingOperation,
            referenced_sop_class_uid=ds.SOPClassUID,
            referenced_sop_instance_uid=ds.SOPInstanceUID,
            relationship_type=contains,
        )
        for ds in sources
    ]
    root.ContentSequence = hd.sr.ContentSequence(items)
    evidence = [with_patient_study_defaults(sources[0]), *sources[1:]]
    with warnings.catch_warnings():
        # highdicom doubts single-component patient names copied from the source: not ours
        warnings.filterwarnings("ignore", ".*intended person name", UserWarning)
        return BasicTextSR(
            evidence=evidence,
            content=root,
            series_instance_uid=series_instance_uid or hd.UID(),
            series_number=series_number,
            sop_instance_uid=sop_instance_uid or hd.UID(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            series_description=f"{SERIES_DESCRIPTION_PREFIX} classification report",
            manufacturer_model_name=model.algorithm_name[:64],
            software_versions=__version__,
            # an empty SpecificCharacterSet (seen in real CTs) means the default repertoire
            specific_character_set=evidence[0].get("SpecificCharacterSet") or None,
            coding_schemes=[
                CodingSchemeIdentificationItem(
                    designator=MEDLENS_SCHEME, name="medlens local codes"
                )
            ],
        )
