"""Apply the Basic Application Level Confidentiality Profile to one dataset, sequences included.

Beyond Table E.1-1 three safety nets close gaps of the table that leak in practice: a date
(DA, DT) the table does not list is treated like ``X/D`` (or shifted when dates are
retained), a person name (PN) it does not list is emptied, and an instance UID it does not
list is replaced like ``U``. Free text (PN, LT, ST, UT, UC) inside a sequence whose action is
D (Content Sequence of an SR, for instance) gets a dummy value.

Two more rules go beyond the table's letter. An overlay group (every element of the even
groups 6000-601E: Overlay Description, Overlay Label, rows, origin..., not only Overlay Data
and Overlay Comments) is removed whole, with or without Overlay Data: its text names what was
drawn, and its bitmap may be text. Document Title (0042,0010), free text the table does not
list, is removed or emptied like ``X/Z``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from medlens.privacy.actions import Action, option_action, resolve_compound
from medlens.privacy.iod_types import attribute_type
from medlens.privacy.keys import Pseudonymizer
from medlens.privacy.options import AnonymizationOptions
from medlens.privacy.profile_table import ProfileRow, profile_row
from medlens.privacy.values import (
    FREE_TEXT_VRS,
    contains_identifier,
    dummy_value,
    shift_da,
    shift_dt,
)

_PATIENT_ID = 0x00100020
_PATIENT_NAME = 0x00100010
_KEPT_UID_KEYWORDS = frozenset(
    {
        "TransferSyntaxUID",
        "CodingSchemeUID",
        "MappingResourceUID",
        "ContextUID",
        "ImplementationClassUID",
    }
)
_META_REMOVED = (
    0x00020016,
    0x00020017,
    0x00020018,
    0x00020026,
    0x00020027,
    0x00020028,
    0x00020100,
    0x00020102,
)
_IDENTIFIER_VRS = frozenset({"PN", "LO", "SH", "DA", "DT", "LT", "ST", "UT", "UC", "AE"})
_OVERLAY_GROUPS = range(0x6000, 0x6020, 2)  # the repeating overlay groups 6000-601E
_EXTRA_ROWS = {  # free text that Table E.1-1 does not list, handled as if it did
    0x00420010: ProfileRow("00420010", "Document Title", "X/Z", None, None, None),
}


@dataclass(frozen=True)
class _FileContext:
    sop_class_uid: str | None
    date_shift_days: int | None
    identifiers: tuple[str, ...]


def patient_key(ds: Dataset) -> str:
    """What identifies the patient of a file: Patient ID, else name and birth date, else study."""
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if patient_id:
        return "id:" + patient_id
    name = str(ds.get("PatientName", "") or "").strip()
    birth = str(ds.get("PatientBirthDate", "") or "").strip()
    if name or birth:
        return f"name:{name}|{birth}"
    return "study:" + str(ds.get("StudyInstanceUID", "") or "")


def _values(elem: DataElement) -> list:
    value = elem.value
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue | list) else [value]


def _identifiers(ds: Dataset) -> tuple[str, ...]:
    """Identifying strings of the file, to recognise them inside descriptors (C action)."""
    found: set[str] = set()
    for elem in ds:
        row = profile_row(elem.tag)
        if row is None or row.desc or row.basic == "U" or elem.VR not in _IDENTIFIER_VRS:
            continue
        for value in _values(elem):
            text = str(value).strip()
            found.add(text)
            if elem.VR == "PN":
                found.update(part.strip() for part in text.replace("=", "^").split("^"))
    return tuple(sorted(t for t in found if len(t) >= 3))


class DatasetDeidentifier:
    """Applies the profile, its options and the pseudonyms to datasets, in place.

    Args:
        options: which profile options are enabled.
        pseudonymizer: the keyed hash (UIDs, patient pseudonym, date shift).
    """

    def __init__(self, options: AnonymizationOptions, pseudonymizer: Pseudonymizer) -> None:
        self.options = options
        self.pseudonymizer = pseudonymizer

    def deidentify(self, ds: Dataset) -> None:
        """De-identify ``ds`` (and its file meta) in place."""
        key = patient_key(ds)
        shift = (
            self.pseudonymizer.date_shift_days(key) if self.options.retain_dates_shifted else None
        )
        sop_class = ds.get("SOPClassUID")
        ctx = _FileContext(str(sop_class) if sop_class else None, shift, _identifiers(ds))
        self._walk(ds, (), ctx, in_dummy_sequence=False)
        pseudonym = self.pseudonymizer.patient_id(key)
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        self._clean_file_meta(ds)

    def _clean_file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in _META_REMOVED:
            if tag in meta:
                del meta[tag]
        if meta.get("MediaStorageSOPInstanceUID"):
            meta.MediaStorageSOPInstanceUID = self.pseudonymizer.uid(
                str(meta.MediaStorageSOPInstanceUID)
            )

    def _walk(
        self, ds: Dataset, path: tuple[str, ...], ctx: _FileContext, in_dummy_sequence: bool
    ) -> None:
        for tag in list(ds.keys()):
            if tag not in ds:  # removed with its overlay group
                continue
            if (
                tag.is_private
                or (tag.element == 0 and tag.group != 2)
                or tag.group in _OVERLAY_GROUPS
            ):
                del ds[tag]  # private elements (Table E.1-1: X), group lengths, overlays
                continue
            elem = ds[tag]
            if not path and tag in (_PATIENT_ID, _PATIENT_NAME):
                continue  # replaced by the pseudonym afterwards
            row = profile_row(tag) or _EXTRA_ROWS.get(int(tag))
            if row is None:
                self._unlisted(ds, elem, path, ctx, in_dummy_sequence)
            else:
                self._apply(
                    ds, elem, self._action(row, elem, path, ctx), path, ctx, in_dummy_sequence
                )

    def _action(
        self, row: ProfileRow, elem: DataElement, path: tuple[str, ...], ctx: _FileContext
    ) -> Action:
        action = option_action(row, self.options) or row.basic
        kind = attribute_type(ctx.sop_class_uid, path, elem.keyword) if "/" in action else None
        return resolve_compound(action, kind)

    def _recurse(
        self, elem: DataElement, path: tuple[str, ...], ctx: _FileContext, in_dummy: bool
    ) -> None:
        for item in elem.value or ():
            self._walk(item, (*path, elem.keyword), ctx, in_dummy)

    def _apply(
        self,
        ds: Dataset,
        elem: DataElement,
        action: Action,
        path: tuple[str, ...],
        ctx: _FileContext,
        in_dummy: bool,
    ) -> None:
        vr = elem.VR
        if action is Action.REMOVE:
            self._remove(ds, elem)
        elif action is Action.ZERO:
            elem.value = [] if vr == "SQ" else None
        elif action is Action.KEEP:
            if vr == "SQ":
                self._recurse(elem, path, ctx, in_dummy)
        elif action is Action.REPLACE_UID:
            if vr == "SQ":
                self._recurse(elem, path, ctx, in_dummy)
            elif vr == "UI":
                self._replace_uids(elem)
            else:
                self._remove(ds, elem)
        elif action is Action.DUMMY:
            self._dummy(ds, elem, path, ctx)
        else:
            self._clean(ds, elem, path, ctx, in_dummy)

    def _remove(self, ds: Dataset, elem: DataElement) -> None:
        tag = elem.tag
        if tag.group & 0xFF00 == 0x6000 and tag.element == 0x3000:
            # Without its Overlay Data an overlay group is broken: it goes as a whole.
            for other in [t for t in ds.keys() if t.group == tag.group]:  # noqa: SIM118 (tags, not elements)
                del ds[other]
        else:
            del ds[tag]

    def _replace_uids(self, elem: DataElement) -> None:
        values = [self.pseudonymizer.uid(str(v)) for v in _values(elem)]
        if values:
            elem.value = values if len(values) > 1 else values[0]

    def _dummy(
        self, ds: Dataset, elem: DataElement, path: tuple[str, ...], ctx: _FileContext
    ) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._recurse(elem, path, ctx, in_dummy=True)
        elif vr == "UI":
            self._replace_uids(elem)
        elif vr == "AT":
            pass  # a tag number identifies nobody
        elif vr in ("DA", "DT") and ctx.date_shift_days is not None:
            self._shift(elem, ctx.date_shift_days)
        else:
            elem.value = dummy_value(vr)

    def _shift(self, elem: DataElement, days: int) -> None:
        shifter = shift_da if elem.VR == "DA" else shift_dt
        shifted = [shifter(str(v), days) for v in _values(elem)]
        if any(s is None for s in shifted):
            elem.value = None  # an unparsable date is dropped, never kept
        elif shifted:
            elem.value = shifted if len(shifted) > 1 else shifted[0]

    def _clean(
        self,
        ds: Dataset,
        elem: DataElement,
        path: tuple[str, ...],
        ctx: _FileContext,
        in_dummy: bool,
    ) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._recurse(elem, path, ctx, in_dummy)
        elif vr in ("DA", "DT"):
            if ctx.date_shift_days is None:
                elem.value = dummy_value(vr)
            else:
                self._shift(elem, ctx.date_shift_days)
        elif vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            self._remove(ds, elem)  # binary content cannot be inspected
        elif vr == "UI":
            self._replace_uids(elem)
        elif (isinstance(elem.value, str | MultiValue) or vr in FREE_TEXT_VRS) and any(
            contains_identifier(str(v), ctx.identifiers) for v in _values(elem)
        ):
            elem.value = dummy_value(vr)

    def _unlisted(
        self,
        ds: Dataset,
        elem: DataElement,
        path: tuple[str, ...],
        ctx: _FileContext,
        in_dummy: bool,
    ) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._recurse(elem, path, ctx, in_dummy)
        elif vr in ("DA", "DT"):
            if ctx.date_shift_days is not None:
                self._shift(elem, ctx.date_shift_days)
            else:
                kind = attribute_type(ctx.sop_class_uid, path, elem.keyword)
                self._apply(ds, elem, resolve_compound("X/D", kind), path, ctx, in_dummy)
        elif vr == "UI":
            if self._is_instance_uid(elem):
                self._replace_uids(elem)
        elif vr == "PN":
            elem.value = dummy_value(vr) if in_dummy and _values(elem) else None
        elif in_dummy and vr in FREE_TEXT_VRS and _values(elem):
            elem.value = dummy_value(vr)

    @staticmethod
    def _is_instance_uid(elem: DataElement) -> bool:
        keyword = elem.keyword
        if keyword.endswith("ClassUID") or keyword in _KEPT_UID_KEYWORDS:
            return False
        return any(UID(str(v)).name == str(v) for v in _values(elem))  # not a registered UID
