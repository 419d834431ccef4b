"""De-identification benchmark: every real DICOM file we have through ``medlens anonymize``,
then each output searched for the identifying values of its input.

Inputs: pydicom's own test files, the pydicom-data package's files, and the real CT + SEG
of ../shared/data/dicom_ct_liver_seg, plus 3 deliberately broken copies (truncated, not
DICOM, empty) that must be refused. For every input we collect the values a re-identifier
would look for: the string values of every attribute whose Basic Profile action is not K
(keep) — names, IDs, dates, times, institution, physicians, descriptions, addresses, UIDs —
at any depth of the data set, at least 4 characters long, and not generic (not a short
bare number, not an all-zero placeholder, not part of a value the profile keeps, such as
the institution "TOSHIBA" inside the manufacturer "TOSHIBA_MEC").
An output "has PHI left" when any such value of its own input appears inside any text
element of the output (names, dates, UIDs, descriptions, private elements, inside
sequences). Pixel data is not searched: burned-in text is what the ``flagged`` status
reports (US/SC/OT and BurnedInAnnotation = YES).

    python benchmarks/deid.py            # writes benchmarks/results/deid.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info, peak_rss_mb  # noqa: E402

from medlens.io_utils import write_atomic  # noqa: E402

TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "DA", "DT", "TM", "UI", "CS", "AE", "UC"}


def real_dicom_files() -> list[Path]:
    """Every DICOM file on disk from pydicom, pydicom-data and the shared CT/SEG."""
    from pydicom.data.data_manager import DATA_ROOT, external_data_sources

    files = sorted((Path(DATA_ROOT) / "test_files").rglob("*.dcm"))
    for source in external_data_sources().values():
        files += [Path(p) for p in source.get_paths("*", 0) if Path(p).is_file()]
    files += sorted((SHARED_DATA / "dicom_ct_liver_seg").rglob("*.dcm"))
    seen, unique = set(), []
    for path in files:
        if path.resolve() not in seen and path.stat().st_size > 0:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def _values(ds: Any, keep: bool) -> set[str]:
    """String values of the elements whose Basic Profile action is (``keep``) or is not K."""
    from medlens.privacy.profile_table import profile_row

    out: set[str] = set()
    for elem in ds.iterall():
        if elem.VR == "SQ" or elem.VR not in TEXT_VRS or elem.tag.is_private:
            continue
        row = profile_row(int(elem.tag))
        is_kept = row is None or row.basic == "K"
        if is_kept != keep:
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        for value in values:
            text = str(value).strip()
            if text:
                out.add(text)
    return out


def identifying_values(ds: Any) -> set[str]:
    """Values an identifier would search for (see the module docstring)."""
    kept = _values(ds, keep=True)
    generic = {"NONE", "UNKNOWN", "ANONYMOUS", "YES", "NO"}
    out = set()
    for value in _values(ds, keep=False):
        short_number = value.isdigit() and len(value) < 6
        placeholder = set(value) <= set("0. :-")  # zero dates/times, a dummy value
        inside_kept = any(value in k for k in kept)  # e.g. "TOSHIBA" in Manufacturer
        if (
            len(value) >= 4
            and not inside_kept
            and value.upper() not in generic
            and not short_number
            and not placeholder
        ):
            out.add(value)
    return out


def phi_left(source: Path, output: Path) -> list[str]:
    """The identifying values of ``source`` found in ``output`` (empty when clean)."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = pydicom.dcmread(source, force=True)
        out = pydicom.dcmread(output, force=True)
        targets = identifying_values(src)
        found_values = {
            str(e.value) for e in out.iterall() if e.VR not in ("SQ", "OB", "OW", "OF", "OD", "UN")
        }
    return [v for v in sorted(targets) if any(v in text for text in found_values)]


def broken_copies(folder: Path, template: Path) -> list[Path]:
    data = template.read_bytes()
    paths = [folder / "truncated.dcm", folder / "not_dicom.dcm", folder / "empty.dcm"]
    paths[0].write_bytes(data[: max(200, len(data) // 3)])
    paths[1].write_bytes(b"this is a text file, not DICOM\n" * 10)
    paths[2].write_bytes(b"")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "deid.json")
    args = parser.parse_args()
    from medlens.privacy import AnonymizationOptions, anonymize_tree

    os.environ.setdefault("MEDLENS_DEID_KEY", "benchmark-key-not-a-secret-0123456789")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medlens-deid-") as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        originals = real_dicom_files()
        for k, path in enumerate(originals):
            shutil.copyfile(path, inputs / f"{k:04d}_{path.name}")
        broken = broken_copies(inputs, originals[0])
        report = anonymize_tree(inputs, Path(tmp) / "out", AnonymizationOptions())
        leaks: dict[str, list[str]] = {}
        checked = 0
        for outcome in report.outcomes:
            if outcome.output_path is None:
                continue
            checked += 1
            left = phi_left(outcome.input_path, outcome.output_path)
            if left:
                leaks[outcome.input_path.name] = left[:5]
        refused = [o for o in report.outcomes if o.status == "refused"]
        broken_refused = sum(1 for o in refused if o.input_path in broken)
    wall = time.perf_counter() - t0
    result = {
        "machine": machine_info(),
        "protocol": __doc__.strip().splitlines()[0],
        "inputs": len(report.outcomes),
        "real_inputs": len(originals),
        "broken_inputs": len(broken),
        "broken_refused": broken_refused,
        "flagged_burned_in": report.count("flagged"),
        "refused_reasons": sorted({o.reason for o in refused}),
        "files_with_phi_left_detail": leaks,
        "anonymize_seconds": report.seconds,
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
        "summary": {
            "files_checked": checked,
            "files_with_phi_left": len(leaks),
            "files_refused": len(refused),
            "files_per_s": len(report.outcomes) / max(report.seconds, 1e-9),
        },
    }
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    if leaks:
        print("PHI left in:", json.dumps(leaks, indent=2)[:2000])


if __name__ == "__main__":
    main()
