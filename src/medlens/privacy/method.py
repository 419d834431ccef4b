"""Recording in the file itself what de-identification was done (PS3.15 E.1.1, PS3.3 C.7.1.1)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from medlens.privacy.options import AnonymizationOptions


def method_codes(options: AnonymizationOptions, pixels_cleaned: bool) -> list:
    """The CID 7050 codes of the profile and of each option that was applied."""
    chosen = [codes.DCM.BasicApplicationConfidentialityProfile]
    if options.retain_dates_shifted:
        chosen.append(codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption)
    if options.retain_patient_characteristics:
        chosen.append(codes.DCM.RetainPatientCharacteristicsOption)
    if options.clean_descriptors:
        chosen.append(codes.DCM.CleanDescriptorsOption)
    if pixels_cleaned:
        chosen.append(codes.DCM.CleanPixelDataOption)
    return chosen


def mark_deidentified(ds: Dataset, options: AnonymizationOptions, pixels_cleaned: bool) -> None:
    """Set Patient Identity Removed, De-identification Method (+ Code Sequence) and
    Longitudinal Temporal Information Modified."""
    chosen = method_codes(options, pixels_cleaned)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = ["medlens PS3.15 Annex E", *(code.meaning for code in chosen)]
    items = []
    for code in chosen:
        item = Dataset()
        item.CodeValue = code.value
        item.CodingSchemeDesignator = code.scheme_designator
        item.CodeMeaning = code.meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_dates_shifted else "REMOVED"
    )
