"""Encapsulated documents (PDF, CDA, STL, OBJ, MTL): refused unless the user opts in.

The document inside (Encapsulated Document, 0042,0011) is free text or a 3D surface that
medlens cannot clean: a PDF report names the patient on its first line, a CDA is an XML
clinical document, a surface model of a head is a face. The rule:

- by default such a file is **refused** (left out, listed in the log);
- with ``AnonymizationOptions.quarantine_documents`` (``--quarantine-documents``) it is
  written to the quarantine folder with status ``flagged``: the header is de-identified as
  for any file and Document Title is emptied, but the document bytes are kept unchanged, so
  a person can review (and redact) it before release. It is never written beside the
  clean files.

A file is an encapsulated document when its SOP class is one of the five Encapsulated
Document storage classes, or when it holds an Encapsulated Document element anywhere.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

ENCAPSULATED_DOCUMENT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "STL",
    "1.2.840.10008.5.1.4.1.1.104.4": "OBJ",
    "1.2.840.10008.5.1.4.1.1.104.5": "MTL",
}
ENCAPSULATED_DOCUMENT_TAG = 0x00420011


def document_kind(ds: Dataset) -> str | None:
    """``PDF``, ``CDA``, ``STL``, ``OBJ``, ``MTL``, ``other`` (an Encapsulated Document element in
    another SOP class), or None when the file carries no encapsulated document."""
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID") or getattr(meta, "MediaStorageSOPClassUID", "") or "")
    kind = ENCAPSULATED_DOCUMENT_CLASSES.get(sop_class.strip().rstrip("\x00"))
    if kind is not None:
        return kind
    if any(elem.tag == ENCAPSULATED_DOCUMENT_TAG for elem in ds.iterall()):
        return "other"
    return None


def refusal_reason(kind: str) -> str:
    """The log's reason for a refused document (fixed wording)."""
    what = "an encapsulated document" if kind == "other" else f"an encapsulated {kind} document"
    return (
        f"{what} may hold identifying text that cannot be removed; left out "
        "(quarantine_documents writes it to the quarantine folder for review)"
    )


def flag_reason(kind: str) -> str:
    """The log's reason for a document written to quarantine (fixed wording)."""
    what = "encapsulated document" if kind == "other" else f"encapsulated {kind} document"
    return f"{what} kept unchanged: its content is not de-identified"
