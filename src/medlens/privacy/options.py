"""What ``anonymize_tree`` is asked to do: the profile, its options, pixel regions, the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medlens.errors import ConfigError

KEY_ENV_VAR = "MEDLENS_DEID_KEY"


@dataclass(frozen=True)
class PixelRegion:
    """A box of pixels to blank in every frame, half-open like a numpy slice.

    Attributes:
        row_start, row_stop: first and one-past-last row (pixels from the top).
        col_start, col_stop: first and one-past-last column (pixels from the left).
        modality: blank only files of this Modality (``US``, ``SC``...); None for every file.

    Example:
        >>> PixelRegion(0, 40, 0, 512, modality="US")  # the top 40 rows of ultrasound frames
        PixelRegion(row_start=0, row_stop=40, col_start=0, col_stop=512, modality='US')
    """

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    modality: str | None = None

    def __post_init__(self) -> None:
        if min(self.row_start, self.col_start) < 0:
            raise ConfigError("blank_regions", f"{self} starts before pixel 0")
        if self.row_stop <= self.row_start or self.col_stop <= self.col_start:
            raise ConfigError("blank_regions", f"{self} is empty (stop must exceed start)")


@dataclass(frozen=True)
class AnonymizationOptions:
    """Options of the PS3.15 Annex E de-identification.

    Attributes:
        profile: the confidentiality profile; only ``basic`` (Table E.1-1) exists.
        retain_dates_shifted: Retain Longitudinal Temporal Information with Modified Dates:
            dates (DA, and the date part of DT) move by a per-patient number of days drawn
            from the keyed hash of the patient; times are kept.
        retain_patient_characteristics: keep age, sex, size, weight, ethnic group, smoking
            and pregnancy status (Retain Patient Characteristics Option).
        clean_descriptors: keep free-text descriptions (study, series, protocol...) unless
            they contain an identifying value of the same file (Clean Descriptors Option).
        blank_regions: pixel boxes to blank (Clean Pixel Data Option); files that get one
            are decompressed and written uncompressed.
        quarantine_documents: write encapsulated documents (PDF, CDA, STL, OBJ, MTL) to the
            quarantine folder, their content unchanged, for a person to review; when False
            (the default) they are refused (see ``medlens.privacy.documents``).
        key_file: file holding the secret of the keyed hash; when None the secret comes
            from the environment variable ``key_env``.
        key_env: name of that environment variable.
    """

    profile: str = "basic"
    retain_dates_shifted: bool = False
    retain_patient_characteristics: bool = False
    clean_descriptors: bool = False
    blank_regions: tuple[PixelRegion, ...] = field(default_factory=tuple)
    quarantine_documents: bool = False
    key_file: Path | None = None
    key_env: str = KEY_ENV_VAR

    def __post_init__(self) -> None:
        if self.profile != "basic":
            raise ConfigError(
                "profile", f"unknown confidentiality profile {self.profile!r}; available: basic"
            )
        object.__setattr__(self, "blank_regions", tuple(self.blank_regions))
        if self.key_file is not None:
            object.__setattr__(self, "key_file", Path(self.key_file))
