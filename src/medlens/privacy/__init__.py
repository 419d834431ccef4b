"""DICOM de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile."""

from medlens.privacy.anonymize import anonymize_tree
from medlens.privacy.options import KEY_ENV_VAR, AnonymizationOptions, PixelRegion
from medlens.privacy.report import AnonymizationReport, FileOutcome

__all__ = [
    "KEY_ENV_VAR",
    "AnonymizationOptions",
    "AnonymizationReport",
    "FileOutcome",
    "PixelRegion",
    "anonymize_tree",
]
