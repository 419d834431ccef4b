"""``anonymize_tree``: a DICOM file or folder in, a de-identified folder and a CSV log out.

Where each file goes:

- ``ok``: de-identified, written to ``OUT/<patient>/<study>/<series>/<instance>.dcm``;
- ``flagged``: de-identified as far as the header goes, but something in it cannot be
  cleaned by medlens: pixels that may show burned-in text (``medlens.privacy.burned_in``)
  or, when the user opts in with ``quarantine_documents``, an encapsulated document
  (``medlens.privacy.documents``). Written to ``OUT/quarantine/<patient>/...`` only, never
  beside the clean files, so that copying the clean tree never carries them along;
- ``refused``: left out: not DICOM, truncated, malformed, a DICOMDIR, or an encapsulated
  document (PDF, CDA, STL, OBJ, MTL) without the opt-in.

Every output has its 128-byte preamble zeroed (it may hold text) and loses its overlay
groups (60xx) whole. The log's ``reason`` column says why each file was flagged or refused,
in fixed words that quote no value of the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medlens.errors import InputError
from medlens.privacy.burned_in import blank_regions, burned_in_reasons, regions_for
from medlens.privacy.deidentify import DatasetDeidentifier
from medlens.privacy.documents import document_kind, flag_reason, refusal_reason
from medlens.privacy.keys import Pseudonymizer, load_key
from medlens.privacy.method import mark_deidentified
from medlens.privacy.options import AnonymizationOptions
from medlens.privacy.reading import RefusedFile, read_for_deidentification, uids_are_digits
from medlens.privacy.report import (
    LOG_NAME,
    QUARANTINE_NAME,
    AnonymizationReport,
    FileOutcome,
    Status,
    write_log,
)


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """pydicom's warnings quote element values (patient names, UIDs): none may reach a log."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _input_files(in_path: Path, out_dir: Path) -> list[Path]:
    if not in_path.exists():
        raise InputError(in_path, "input not found")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "the output path is a file, not a folder")
    if in_path.is_file():
        return [in_path]
    inside = out_dir.resolve()
    if inside == in_path.resolve() or in_path.resolve() in inside.parents:
        raise InputError(
            out_dir, "the output folder is inside the input folder; choose a folder outside it"
        )
    files = sorted(p for p in in_path.rglob("*") if p.is_file())
    if not files:
        raise InputError(in_path, "the input folder holds no files")
    return files


def _file_meta_for_writing(ds: Dataset, instance_uid: str) -> bool:
    """Complete the file meta; True when the file can be written as a conformant Part 10 file.

    A dataset without SOP Instance UID gets ``instance_uid``; one without a SOP Class keeps
    its form but still gets the preamble, so that it reads back like any DICOM file. The
    preamble is always 128 zero bytes: the input's may hold text (PS3.10 7.1 leaves it free).
    """
    ds.preamble = b"\x00" * 128
    meta = ds.file_meta
    if getattr(meta, "TransferSyntaxUID", None) is None:
        implicit, little = ds.original_encoding
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if not ds.get("SOPInstanceUID"):
        ds.SOPInstanceUID = instance_uid
    if not ds.get("SOPClassUID") and meta.get("MediaStorageSOPClassUID"):
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if not ds.get("SOPClassUID"):
        return False
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return True


def _output_path(
    ds: Dataset, out_dir: Path, sha: str, taken: set[Path], pseudonymizer: Pseudonymizer
) -> Path:
    """``PATIENT/STUDY/SERIES/INSTANCE.dcm`` from the new identifiers, so studies keep their shape."""
    folder = (
        out_dir
        / str(ds.PatientID)
        / str(ds.get("StudyInstanceUID") or "no-study")
        / str(ds.get("SeriesInstanceUID") or "no-series")
    )
    name = str(ds.get("SOPInstanceUID") or pseudonymizer.file_token(sha))  # same as _write gives it
    for candidate in (folder / f"{name}.dcm", folder / f"{name}-{sha[:12]}.dcm"):
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    raise RefusedFile("the same file content was given twice; the copy is left out")


def _write(ds: Dataset, target: Path, instance_uid: str) -> None:
    conformant = _file_meta_for_writing(ds, instance_uid)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        ds.save_as(partial, enforce_file_format=conformant)
        os.replace(partial, target)
    except Exception as exc:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise RefusedFile(
            f"the de-identified file cannot be written ({type(exc).__name__})"
        ) from None


def _anonymize_file(
    path: Path,
    out_dir: Path,
    deidentifier: DatasetDeidentifier,
    options: AnonymizationOptions,
    taken: set[Path],
) -> FileOutcome:
    try:
        data = path.read_bytes()
    except OSError:
        return FileOutcome(path, "", None, "refused", "the file cannot be read")
    sha = hashlib.sha256(data).hexdigest()
    try:
        ds = read_for_deidentification(data, path)
        document = document_kind(ds)
        if document is not None and not options.quarantine_documents:
            raise RefusedFile(refusal_reason(document))
        regions = regions_for(ds, options.blank_regions)
        flags = [flag_reason(document)] if document is not None else []
        if not uids_are_digits(ds):
            flags.append("a UID holds characters other than digits and dots (tampering?)")
        pixel_flags = burned_in_reasons(ds, blanked=bool(regions))
        if pixel_flags:
            flags.append("possible burned-in text: " + ", ".join(pixel_flags))
        deidentifier.deidentify(ds)
        if regions:
            try:
                blank_regions(ds, regions)
            except Exception as exc:
                raise RefusedFile(
                    f"the pixel regions cannot be blanked ({type(exc).__name__})"
                ) from None
        mark_deidentified(ds, options, pixels_cleaned=bool(regions))
        folder = out_dir / QUARANTINE_NAME if flags else out_dir
        target = _output_path(ds, folder, sha, taken, deidentifier.pseudonymizer)
        _write(ds, target, deidentifier.pseudonymizer.file_token(sha))
    except RefusedFile as refused:
        return FileOutcome(path, sha, None, "refused", refused.reason)
    except Exception as exc:  # one bad file must not stop the batch
        return FileOutcome(
            path, sha, None, "refused", f"de-identification failed ({type(exc).__name__})"
        )
    blanked = [f"{len(regions)} pixel regions blanked"] if regions else []
    status: Status = "flagged" if flags else "ok"
    return FileOutcome(path, sha, target, status, "; ".join([*flags, *blanked]))


def anonymize_tree(
    in_path: str | Path, out_dir: str | Path, options: AnonymizationOptions | None = None
) -> AnonymizationReport:
    """De-identify a DICOM file or every file under a folder (PS3.15 Annex E, basic profile).

    Each output is written to a temporary name and renamed when complete, under
    ``OUT/<pseudonymous patient>/<study UID>/<series UID>/<instance UID>.dcm``; a flagged
    file goes under ``OUT/quarantine/`` instead (see the module docstring). A file that is
    not DICOM, truncated or malformed, or an encapsulated document without
    ``options.quarantine_documents``, is refused and left out; the run goes on. The CSV log
    ``OUT/deidentification_log.csv`` maps the SHA-256 of each input to its output, status and
    reason, without any patient information.

    Args:
        in_path: a DICOM file or a folder (searched recursively).
        out_dir: the output folder; created if needed; must not lie inside ``in_path``.
        options: profile options, pixel regions and the key source (defaults: basic profile,
            key from ``MEDLENS_DEID_KEY``).

    Returns:
        The outcome of every file and the log's path.

    Raises:
        ConfigError: no key (or a too short one) is configured.
        InputError: the input is missing or empty, the key file is unreadable, or the output
            folder is inside the input folder.

    Example:
        >>> report = anonymize_tree("study/", "study_anon/",
        ...                         AnonymizationOptions(retain_dates_shifted=True))
        >>> print(report.summary())
        3 files: 3 ok, 0 flagged, 0 refused
    """
    start = time.perf_counter()
    options = options or AnonymizationOptions()
    in_path, out_dir = Path(in_path), Path(out_dir)
    files = _input_files(in_path, out_dir)
    deidentifier = DatasetDeidentifier(options, Pseudonymizer(load_key(options)))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = AnonymizationReport(output_dir=out_dir, log_path=out_dir / LOG_NAME)
    taken: set[Path] = set()
    with _quiet_pydicom():
        for path in files:
            report.outcomes.append(_anonymize_file(path, out_dir, deidentifier, options, taken))
    report.seconds = time.perf_counter() - start
    write_log(report)
    return report
