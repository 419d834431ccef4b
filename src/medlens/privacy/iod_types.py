"""Whether an attribute is Type 1, 2 or 3 in the IOD of a SOP Class.

The compound actions of Table E.1-1 (X/Z, X/D, X/Z/D...) depend on it: remove the attribute
unless the IOD requires it (Type 2: keep it empty; Type 1: give it a dummy value). The module
tables come from highdicom, which ships them as data generated from the standard. Without
highdicom every lookup answers None and the caller keeps the object conformant the safe way.
"""

from __future__ import annotations

from functools import lru_cache

_RANK = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}


@lru_cache(maxsize=1)
def _standard_tables() -> tuple[dict, dict, dict] | None:
    try:
        from highdicom._standard_utils import (  # the module tables of the DICOM standard
            get_iod_module_map,
            get_module_attribute_map,
            get_sop_class_iod_map,
        )
    except ImportError:  # highdicom is an optional dependency (extra "dicom-seg")
        return None
    return get_sop_class_iod_map(), get_iod_module_map(), get_module_attribute_map()


@lru_cache(maxsize=64)
def _iod_types(
    iod: str,
) -> tuple[dict[tuple[str, ...], str], dict[tuple[str, str], str], dict[str, str]]:
    tables = _standard_tables()
    assert tables is not None
    _, iod_modules, module_attributes = tables
    by_path: dict[tuple[str, ...], str] = {}
    by_parent: dict[tuple[str, str], str] = {}
    by_keyword: dict[str, str] = {}
    for module in iod_modules[iod]:
        for attribute in module_attributes.get(module["key"], ()):
            kind, keyword, path = attribute["type"], attribute["keyword"], tuple(attribute["path"])
            entries: list[tuple[dict, object]] = [(by_path, (*path, keyword))]
            if path:
                entries += [(by_parent, (path[-1], keyword)), (by_keyword, keyword)]
            for table, key in entries:
                if key not in table or _RANK[kind] < _RANK[table[key]]:
                    table[key] = kind
    return by_path, by_parent, by_keyword


def attribute_type(sop_class_uid: str | None, path: tuple[str, ...], keyword: str) -> str | None:
    """The strictest type (``1``, ``1C``, ``2``, ``2C`` or ``3``) of an attribute in an IOD.

    Args:
        sop_class_uid: the SOP Class UID of the instance.
        path: keywords of the sequences that hold the attribute, outermost first.
        keyword: the attribute's keyword.

    Returns:
        The type at that path. A nested attribute whose full path the tables do not list
        (a macro reached another way) takes the strictest type it has under the same parent
        sequence, else anywhere in the IOD. ``3`` when the IOD does not use it there; None
        when the SOP Class is unknown or the standard's tables are unavailable.
    """
    tables = _standard_tables()
    if tables is None or not sop_class_uid or not keyword:
        return None
    iod = tables[0].get(str(sop_class_uid))
    if iod is None or iod not in tables[1]:
        return None
    by_path, by_parent, by_keyword = _iod_types(iod)
    found = by_path.get((*path, keyword))
    if found is None and path:
        found = by_parent.get((path[-1], keyword)) or by_keyword.get(keyword)
    return found or "3"
