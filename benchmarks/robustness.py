"""Robustness benchmark: a hostile corpus through every way medlens reads files (issue 13).

The script builds the corpus itself (nothing is downloaded), in a fresh folder:

- ``nifti_bomb``: gzip NIfTI-1 and NIfTI-2 files (and one uncompressed ``.nii``) whose
  headers declare billions of voxels in a few hundred bytes (one holds 64 MiB of real
  zeros in 65 kB, as in ``medlens.data.budget``'s docstring);
- ``dicom_bomb``: a DICOM in every compressed transfer syntax pydicom knows (deflate, RLE,
  JPEG, JPEG-LS, JPEG 2000, HTJ2K, JPIP, MPEG/H.264/HEVC, SMPTE 2110) whose header declares
  65535 x 65535 x 10000 frames; the same in native Explicit VR; a deflated data set whose
  pixel element inflates to 1 GiB; and one 64 x 64 image per JPEG / JPEG-LS / JPEG 2000
  syntax whose compressed frame itself declares 60000 x 60000 (``dicom_frame_bomb``);
- ``png_bomb``: PNGs declaring 100000^2 grey (header only), 20000^2 grey and 65535^2
  1-bit of real zeros, and 10000^2 RGB (under Pillow's own bomb limit, over the budget);
- ``zip_bomb`` / ``zip_slip``: a zipped "series" inflating to 1 GiB, one lying about its
  size, 3000 directory entries sharing one 1 MiB member, 5000 members; members named
  ``../../..``, absolute, and a symlink member;
- ``uid_traversal``: a DICOM whose Study/Series/SOP Instance UIDs are paths
  (``../../../../escape/uid_evil``), as a file and as a zipped one-slice series;
- ``encapsulated_pdf``: Encapsulated PDF Storage whose PDF names the patient;
- ``burned_in_sc``: Secondary Capture images with the patient's name drawn in the pixels
  (and its bytes written into the first pixel row, so a byte search finds it);
- ``symlink_loop``: folders whose links climb back up (``a/up -> ..``), with and without an
  image beside them, and a link to itself (``loop.dcm -> loop.dcm``) beside an image;
- ``truncated``: PNG, JPEG, TIFF, DICOM (in the header and in the pixels), NIfTI (gzip and
  plain), ``.npy``, zip, and an empty file;
- ``pydicom_malformed``: every file of ``pydicom.data.get_testdata_files()`` (pydicom's test
  files and pydicom-data's) that pydicom cannot read fully (``dcmread`` without ``force``,
  every element's value, and the pixel array when there is pixel data). The files it reads
  fully are counted; a good PNG, a good DICOM and a good zipped series are run as
  controls through every path first (their peaks are the baselines).

Every DICOM the script writes has ``PatientName`` and ``PatientID`` (the PDF its text, the
SC its pixels) set to a PHI marker; every output byte (files written, stdout and stderr,
response bodies, the service's log) is searched for it afterwards. Two places may hold it
by design and are not counted as leaks: an anonymize ``quarantine/`` folder may keep the
burned-in pixels (never the header's name), and a DICOM SEG answered by ``/v1/segment``
carries its own patient's Patient module (``phi_in_dicom_result`` records it).

Each input goes through these paths (folders through the CLI paths only; the SC images
through ``anonymize`` only, the point of them):

- ``predict``: ``medlens predict RUN INPUT --out OUT.csv --quiet`` (small_cnn, 28 px);
- ``evaluate``: ``medlens evaluate RUN --data ROOT --format folder`` with the input in a
  class folder beside five good images (a split needs 3 cases in the largest class);
- ``stream-local`` / ``stream-ray``: ``medlens predict ... --engine local|ray --workers 1``
  (Ray only when it imports);
- ``anonymize``: ``medlens anonymize INPUT OUT``;
- ``service:/v1/predict`` (every file) and ``service:/v1/segment`` (zips, ``format=dicom-seg``,
  on a small 2D U-Net): ``medlens serve`` in a child process on a free loopback port.

"Refused cleanly", per path: ``predict`` and ``evaluate`` exit 2 with exactly one
``error:`` line and no traceback; the streaming engines, whose contract is an error row per
bad file, exit 0 with every row an error; ``anonymize`` exits 0 with every file of the
input ``refused`` or ``flagged`` (quarantined) in its log, never ``ok``, or exits 2 with one
line; the service answers 4xx with a one-line JSON ``detail``. A folder holding no image at
all (only symlink loops) may also finish with no row (exit 0), and the streaming engines may
refuse such a folder as a whole (exit 2, one line). Three inputs are real images to some
paths, and there the clean outcome is to process them, not to refuse them: the image
behind symlink loops is predicted exactly once (``process``), the image beside a self-link
is predicted and the link is an error row (``partial``, streaming), and the UID-traversal
image is classified by the CLI paths (the classifier does not use UIDs; the service checks
every upload's UIDs, as its DICOM answers reference them, and refuses it). A pydicom test
file that is a complete data set merely lacking the Part 10 preamble and file meta
(``is_legacy_data_set``) is de-identified by ``anonymize`` (``process``). Every row says which was expected
(``expect``). No trial is clean when a PHI marker is found or a file escaped. A trial that
runs over ``--timeout-s``, or whose process tree goes over ``--rss-guard-mib``, is killed
and not clean.

Measured per trial: the outcome (exit code or HTTP status) and its one line, seconds to
answer, the peak RSS increase (CLI: the peak RSS of the child's whole process tree, the
larger of a psutil poll every 20 ms and ``RUSAGE_CHILDREN`` from a small launcher process,
minus the peak of the good control through the same path; a trial over 256 MiB is run twice
more and the median of the three peaks kept, as a Ray worker more or less is ~500 MiB;
service: the server's peak RSS during the request, from ``VmHWM`` reset through
``/proc/PID/clear_refs``, minus its RSS before, minus the same for the good control), 5xx
answers, temp files left (every child gets a fresh ``TMPDIR``; Ray's session folder, which
Ray keeps by design, gets its own ``RAY_TMPDIR`` and torch's ``torchinductor_*`` cache is
left out; ``*.tmp``/``*.partial`` files left in the output count too), files that escaped
(anything named ``*evil*`` outside the corpus), and PHI markers found.

Summary: ``inputs_tried`` (trials: inputs x paths), ``refused_cleanly`` (target: equal to
``inputs_tried``), ``errors_5xx`` (0), ``max_rss_increase_mib`` (<= 256),
``temp_files_left`` (0), ``phi_leaks`` (0); then a soak of ``--soak-seconds`` (default 600)
with ``--clients`` (8) clients sending good 28 px PNGs and, a ``--bad-fraction`` of the time,
corpus files the service must refuse, to ``/v1/predict``: ``soak_errors_5xx`` (0),
``soak_rss_growth`` (the server's RSS at the end over its RSS after the warm-up, min(60 s, a
quarter of the soak), minus 1; <= 0.10) and ``soak_p95_ms`` (good requests only; < 100).

Writes benchmarks/results/robustness.json (``--quick``: a subset of the corpus through
every path and a 20 s soak, robustness_quick.json; ``--only``/``--paths``:
robustness_subset.json). Children run with one torch thread (``OMP_NUM_THREADS=1``).
``--service-processes N`` serves with ``medlens serve --processes N``; the server's RSS is
then that of its whole process tree (the supervisor and its N processes), and a request's
peak is the tree's RSS after it (no single ``VmHWM`` covers the tree).

    python benchmarks/robustness.py                   # full corpus, 10 min soak (~50 min)
    python benchmarks/robustness.py --quick           # smoke run (~10 min on 2 cores)
    python benchmarks/robustness.py --only zip_slip_dotdot --paths service:/v1/predict
    python benchmarks/robustness.py --corpus-dir DIR --build-only   # the corpus, kept
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import SHARED_DATA, machine_info  # noqa: E402

from medlens.data.budget import DEFAULT_MAX_VOXELS  # noqa: E402
from medlens.io_utils import write_json_atomic  # noqa: E402

PNEUMONIA = SHARED_DATA / "pneumoniamnist_subset" / "pneumoniamnist.npz"
DRIVE = SHARED_DATA / "drive_retina_vessels"
CT_SLICE = SHARED_DATA / "dicom_ct_liver_seg" / "ct" / "01.dcm"

#: The patient text planted in headers and documents, and the one burned into pixels (a
#: quarantined file may keep the second, never the first).
MARKER_TEXT = "PHI-MARKER-7f3a9c-NAME"
MARKER_PIXELS = "PHI-MARKER-7f3a9c-PIXELS"

CLI_PATHS = ("predict", "evaluate", "stream-local", "stream-ray", "anonymize")
SERVICE_PREDICT = "service:/v1/predict"
SERVICE_SEGMENT = "service:/v1/segment"
PATHS = (*CLI_PATHS, SERVICE_PREDICT, SERVICE_SEGMENT)
SUMMARY_KEYS = (
    "inputs_tried",
    "refused_cleanly",
    "errors_5xx",
    "max_rss_increase_mib",
    "temp_files_left",
    "phi_leaks",
    "soak_errors_5xx",
    "soak_rss_growth",
    "soak_p95_ms",
)
TARGETS = {
    "refused_cleanly": "== inputs_tried",
    "errors_5xx": "== 0",
    "max_rss_increase_mib": "<= 256",
    "temp_files_left": "== 0",
    "phi_leaks": "== 0",
    "soak_errors_5xx": "== 0",
    "soak_rss_growth": "<= 0.10",
    "soak_p95_ms": "< 100",
}
HUGE = (65535, 65535, 10000)  # rows, columns, frames a DICOM bomb declares
FRAME_HUGE = 60000  # the height and width a compressed frame declares
GIB = 1 << 30
CHUNK = 1 << 20
CLASS_MODEL = "pneumonia28"
SEG_MODEL = "vessels"
SOAK_WARMUP_S = 60.0
RSS_LIMIT_MIB = 256.0
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


@dataclass
class Hostile:
    """One input of the corpus.

    Attributes:
        name: unique, stable name (``--only`` takes it).
        kind: the corpus kind (``nifti_bomb``, ``dicom_bomb``, ...).
        path: the file or folder.
        paths: the paths it is fed through.
        expect: path -> ``refuse`` (default), ``process`` or ``partial`` (see the docstring).
        quick: part of the ``--quick`` subset.
        note: what it is, in a few words.
    """

    name: str
    kind: str
    path: Path
    paths: tuple[str, ...] = ()
    expect: dict[str, str] = field(default_factory=dict)
    quick: bool = False
    note: str = ""

    def expected(self, path: str) -> str:
        return self.expect.get(path, "refuse")


# ------------------------------------------------------------------ compressed zeros


def deflate_zeros(n_zeros: int, prefix: bytes = b"") -> bytes:
    """A raw deflate stream of ``prefix`` followed by ``n_zeros`` zero bytes, made in time
    proportional to its own (small) size: after a full flush the compressor's output for a
    chunk of zeros repeats exactly, so one compressed chunk is copied ``n_zeros / 1 MiB``
    times."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [comp.compress(prefix), comp.flush(zlib.Z_FULL_FLUSH)]
    full, rest = divmod(n_zeros, CHUNK)
    if full:
        block = comp.compress(bytes(CHUNK)) + comp.flush(zlib.Z_FULL_FLUSH)
        parts.append(block * full)
    parts += [comp.compress(bytes(rest)), comp.flush()]
    return b"".join(parts)


def crc32_zeros(n_zeros: int, prefix: bytes = b"") -> int:
    crc = zlib.crc32(prefix)
    full, rest = divmod(n_zeros, CHUNK)
    zeros = bytes(CHUNK)
    for _ in range(full):
        crc = zlib.crc32(zeros, crc)
    return zlib.crc32(bytes(rest), crc) & 0xFFFFFFFF


def gzip_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """A gzip file of ``prefix`` + ``n_zeros`` zero bytes."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    size = (len(prefix) + n_zeros) & 0xFFFFFFFF
    trailer = struct.pack("<II", crc32_zeros(n_zeros, prefix), size)
    return header + deflate_zeros(n_zeros, prefix) + trailer


def zlib_zeros(n_zeros: int) -> bytes:
    """A zlib stream of ``n_zeros`` zero bytes (Adler-32 of zeros: a = 1, b = n mod 65521)."""
    adler = ((n_zeros % 65521) << 16) | 1
    return b"\x78\xda" + deflate_zeros(n_zeros) + struct.pack(">I", adler)


# ------------------------------------------------------------------ NIfTI


def nifti_header(shape: tuple[int, ...], dtype: Any = np.uint8, version: int = 1) -> bytes:
    """A single-file NIfTI header (and the 4 extension bytes) declaring ``shape``."""
    import nibabel as nib

    header = nib.Nifti1Header() if version == 1 else nib.Nifti2Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    offset = 352 if version == 1 else 544
    header.set_data_offset(offset)
    return header.binaryblock + b"\x00" * 4


def declared_nifti_voxels(path: Path) -> int:
    """The voxels a NIfTI file's header declares (reads the header only)."""
    import nibabel as nib

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        block = handle.read(540)
    klass = nib.Nifti2Header if struct.unpack("<i", block[:4])[0] == 540 else nib.Nifti1Header
    header = klass(block[: klass.sizeof_hdr])
    return int(np.prod([int(d) for d in header.get_data_shape()], dtype=object))


def nifti_bombs(folder: Path) -> list[Hostile]:
    cube = nifti_header((4096, 4096, 4096))
    specs = (
        ("nifti_gz_bomb_4096cube.nii.gz", gzip.compress(cube, mtime=0), True, "header only"),
        ("nifti_gz_bomb_zeros.nii.gz", gzip_zeros(cube, 64 * CHUNK), False, "64 MiB of zeros"),
        (
            "nifti_gz_bomb_4d_float64.nii.gz",
            gzip.compress(nifti_header((512, 512, 512, 64), np.float64), mtime=0),
            False,
            "512^3 x 64 float64",
        ),
        (
            "nifti2_gz_bomb.nii.gz",
            gzip.compress(nifti_header((100000,) * 3, version=2), mtime=0),
            False,
            "NIfTI-2, 10^15 voxels",
        ),
        ("nifti_plain_bomb.nii", nifti_header((4096,) * 3, np.int16), False, "plain, header only"),
    )
    out = []
    for filename, data, quick, note in specs:
        path = folder / filename
        path.write_bytes(data)
        name = filename.split(".")[0]
        out.append(Hostile(name, "nifti_bomb", path, quick=quick, note=note))
    return out


# ------------------------------------------------------------------ DICOM


def _uid(*parts: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medlens-robustness", *parts]))


def dicom_dataset(
    name: str,
    rows: int,
    columns: int,
    syntax: str = "1.2.840.10008.1.2.1",
    *,
    frames: int | None = None,
    samples: int = 1,
    bits: int = 16,
    sop_class: str = CT_IMAGE_STORAGE,
    modality: str = "CT",
    uids: dict[str, str] | None = None,
) -> Any:
    """A data set with the PHI marker as patient name, and image attributes (no pixels)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    uids = {
        "StudyInstanceUID": _uid(name, "study"),
        "SeriesInstanceUID": _uid(name, "series"),
        "SOPInstanceUID": _uid(name, "sop"),
        **(uids or {}),
    }
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the traversal "UIDs" are invalid on purpose
        meta.MediaStorageSOPInstanceUID = uids["SOPInstanceUID"]
        for keyword, value in uids.items():
            setattr(ds, keyword, value)
    ds.PatientName = MARKER_TEXT
    ds.PatientID = MARKER_TEXT + "-ID"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.Modality = modality
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "A1", ""
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Manufacturer = "medlens-robustness"
    if "FrameOfReferenceUID" not in uids:
        ds.FrameOfReferenceUID = _uid(name, "frame")
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames is not None:
        ds.NumberOfFrames = frames
    return ds


def save_dicom(ds: Any, path: Path) -> Path:
    """Write ``ds`` as a Part 10 file in its file meta's transfer syntax (warnings about
    deliberately invalid values silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


def dicom_bytes(ds: Any) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def compressed_syntaxes() -> list[str]:
    """Every compressed (encapsulated or deflated) transfer syntax pydicom knows."""
    from pydicom.uid import UID, AllTransferSyntaxes

    return [str(u) for u in AllTransferSyntaxes if UID(u).is_compressed or UID(u).is_deflated]


def _small_codestream(syntax: str) -> bytes:
    """A real 64 x 64 8-bit frame in the family of ``syntax`` (JPEG via Pillow; JPEG-LS, JPEG
    2000 and RLE via pydicom's encoders); other syntaxes get a few opaque bytes."""
    import PIL.Image
    from pydicom.encaps import generate_frames
    from pydicom.uid import (
        UID,
        JPEG2000Lossless,
        JPEG2000TransferSyntaxes,
        JPEGLSLossless,
        JPEGLSTransferSyntaxes,
        JPEGTransferSyntaxes,
        RLELossless,
    )

    pixels = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    uid = UID(syntax)
    if uid in JPEGTransferSyntaxes:
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()
    family = {**dict.fromkeys(JPEGLSTransferSyntaxes, JPEGLSLossless)}
    family.update(dict.fromkeys(JPEG2000TransferSyntaxes, JPEG2000Lossless))
    family[RLELossless] = RLELossless
    if uid not in family:
        return b"\x00\x00\x01\xb3" + bytes(60)  # an MPEG-like start code and nothing else
    ds = dicom_dataset("codestream", 64, 64, bits=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(family[uid], pixels, generate_instance_uid=False)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def patch_frame_size(frame: bytes, size: int) -> bytes:
    """A JPEG / JPEG-LS frame with its SOF marker, or a JPEG 2000 codestream with its SIZ
    marker, rewritten to declare ``size`` x ``size``."""
    data = bytearray(frame)
    siz = data.find(b"\xff\x4f\xff\x51")
    if siz >= 0:  # SOC SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz
        base = siz + 4 + 4
        struct.pack_into(">II", data, base, size, size)
        struct.pack_into(">II", data, base + 16, size, size)
        return bytes(data)
    k = 2
    while k + 4 <= len(data):
        marker = data[k + 1]
        if data[k] != 0xFF:
            break
        if marker in (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xF7):
            struct.pack_into(">HH", data, k + 5, size, size)
            return bytes(data)
        k += 2 + struct.unpack(">H", data[k + 2 : k + 4])[0]
    raise ValueError("no SOF or SIZ marker found")


def declared_frame_size(frame: bytes) -> tuple[int, int]:
    """``(height, width)`` a JPEG / JPEG-LS SOF or JPEG 2000 SIZ marker declares."""
    siz = frame.find(b"\xff\x4f\xff\x51")
    if siz >= 0:
        width, height = struct.unpack(">II", frame[siz + 8 : siz + 16])
        return height, width
    k = 2
    while k + 4 <= len(frame) and frame[k] == 0xFF:
        marker = frame[k + 1]
        if marker in (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xF7):
            return struct.unpack(">HH", frame[k + 5 : k + 9])
        k += 2 + struct.unpack(">H", frame[k + 2 : k + 4])[0]
    raise ValueError("no SOF or SIZ marker found")


def _short_name(syntax: str) -> str:
    from pydicom.uid import UID

    text = UID(syntax).name.lower()
    for old, new in (("image compression", ""), ("(lossless only)", "lossless"), ("/", "_")):
        text = text.replace(old, new)
    keep = "".join(c if c.isalnum() else "_" for c in text)
    return "_".join(part for part in keep.split("_") if part)[:60]


QUICK_SYNTAXES = {"1.2.840.10008.1.2.5"}  # RLE; JPEG and JPEG 2000 come as frame bombs


def dicom_bombs(folder: Path) -> list[Hostile]:
    """Headers declaring HUGE in every compressed syntax; frames declaring FRAME_HUGE; a
    deflated pixel element inflating to 1 GiB; a native header declaring HUGE."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        UID,
        DeflatedExplicitVRLittleEndian,
        JPEG2000TransferSyntaxes,
        JPEGLSTransferSyntaxes,
        JPEGTransferSyntaxes,
    )

    rows, columns, frames = HUGE
    out = []
    for syntax in compressed_syntaxes():
        name = f"dicom_bomb_{_short_name(syntax)}"
        ds = dicom_dataset(name, rows, columns, syntax, frames=frames)
        if UID(syntax).is_encapsulated:
            ds.PixelData = encapsulate([_small_codestream(syntax)])
            ds["PixelData"].VR = "OB"
        else:  # deflated: native pixels, far fewer than declared
            ds.PixelData = bytes(64)
            ds["PixelData"].VR = "OW"
        path = save_dicom(ds, folder / f"{name}.dcm")
        quick = syntax in QUICK_SYNTAXES
        note = f"{UID(syntax).name}: header declares {rows} x {columns} x {frames}"
        out.append(Hostile(name, "dicom_bomb", path, quick=quick, note=note))
    ds = dicom_dataset("dicom_bomb_native", rows, columns, frames=frames)
    ds.PixelData = bytes(64)
    ds["PixelData"].VR = "OW"
    path = save_dicom(ds, folder / "dicom_bomb_native_explicit_vr.dcm")
    out.append(Hostile(path.stem, "dicom_bomb", path, note="native, header declares HUGE"))
    path = folder / "dicom_bomb_deflate_1gib.dcm"
    path.write_bytes(deflate_bomb_bytes(GIB))
    out.append(
        Hostile(path.stem, "dicom_bomb", path, quick=True, note="64 x 64 header, 1 GiB inflated")
    )
    for syntax in (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes):
        name = f"dicom_frame_bomb_{_short_name(syntax)}"
        ds = dicom_dataset(name, 64, 64, syntax, frames=1, bits=8)
        ds.PixelData = encapsulate([patch_frame_size(_small_codestream(syntax), FRAME_HUGE)])
        ds["PixelData"].VR = "OB"
        path = save_dicom(ds, folder / f"{name}.dcm")
        quick = syntax in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90")  # JPEG, J2K
        note = f"{UID(syntax).name}: 64 x 64 header, frame declares {FRAME_HUGE}^2"
        out.append(Hostile(name, "dicom_frame_bomb", path, quick=quick, note=note))
    assert DeflatedExplicitVRLittleEndian in compressed_syntaxes()
    return out


def deflate_bomb_bytes(inflated: int) -> bytes:
    """Deflated Explicit VR Little Endian: a 64 x 64 header, then a pixel element whose
    length and zeros make the data set inflate to ``inflated`` bytes."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = dicom_dataset("dicom_bomb_deflate", 64, 64, DeflatedExplicitVRLittleEndian)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dataset(body, ds)
    head = body.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, inflated)
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + deflate_zeros(inflated, head)


def declared_dicom_voxels(path: Path) -> int:
    """Rows x Columns x frames x samples from the header (read without pixel data)."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * frames * int(ds.get("SamplesPerPixel", 1))


# ------------------------------------------------------------------ PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(width: int, height: int, bit_depth: int, color: int, idat: bytes) -> bytes:
    """A PNG: IHDR (``color`` 0 grey, 2 RGB), one IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_zeros(width: int, height: int, bit_depth: int = 8, channels: int = 1) -> bytes:
    """A whole, valid PNG of zeros (every row: filter byte 0 and zero samples)."""
    row = 1 + (width * bit_depth * channels + 7) // 8
    color = 2 if channels == 3 else 0
    return png_bytes(width, height, bit_depth, color, zlib_zeros(row * height))


def declared_png_voxels(path: Path) -> int:
    data = path.read_bytes()[:33]
    width, height, _, color = struct.unpack(">IIBB", data[16:26])
    return width * height * {0: 1, 2: 3, 4: 2, 6: 4, 3: 3}[color]


def png_bombs(folder: Path) -> list[Hostile]:
    out = []
    specs = (
        ("png_bomb_header_100k", False, "IHDR 100000^2 grey, a few rows of data"),
        ("png_bomb_gray_20k", True, "20000^2 grey of real zeros"),
        ("png_bomb_1bit_65k", False, "65535^2 1-bit of real zeros"),
        ("png_bomb_rgb_10k", False, "10000^2 RGB: under Pillow's limit, 300 M voxels"),
    )
    bodies = {
        "png_bomb_header_100k": png_bytes(100000, 100000, 8, 0, zlib.compress(bytes(4 * 100001))),
        "png_bomb_gray_20k": png_zeros(20000, 20000),
        "png_bomb_1bit_65k": png_zeros(65535, 65535, bit_depth=1),
        "png_bomb_rgb_10k": png_zeros(10000, 10000, channels=3),
    }
    for name, quick, note in specs:
        path = folder / f"{name}.png"
        path.write_bytes(bodies[name])
        out.append(Hostile(name, "png_bomb", path, quick=quick, note=note))
    return out


# ------------------------------------------------------------------ zip


@dataclass
class ZipMember:
    """One member of a hand-made zip (sizes may lie)."""

    name: str
    data: bytes  # as stored (deflated when method is 8)
    crc: int
    size: int  # the uncompressed size declared
    method: int = 8
    symlink: bool = False
    offset_of: int | None = None  # share the local entry of an earlier member


def zip_bytes(members: list[ZipMember]) -> bytes:
    """A zip file: local entries, central directory, end record (no ZIP64)."""
    out = io.BytesIO()
    offsets: list[int] = []
    for member in members:
        if member.offset_of is not None:
            offsets.append(offsets[member.offset_of])
            continue
        offsets.append(out.tell())
        name = member.name.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                member.method,
                0,
                0x21,
                member.crc,
                len(member.data),
                member.size,
                len(name),
                0,
            )
            + name
            + member.data
        )
    start = out.tell()
    for member, offset in zip(members, offsets, strict=True):
        name = member.name.encode()
        attr = (0o120777 << 16) if member.symlink else (0o100644 << 16)
        out.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                0x031E,  # made by: Unix
                20,
                0,
                member.method,
                0,
                0x21,
                member.crc,
                len(member.data),
                member.size,
                len(name),
                0,
                0,
                0,
                0,
                attr,
                offset,
            )
            + name
        )
    size = out.tell() - start
    count = len(members)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, start, 0))
    return out.getvalue()


def _stored(name: str, data: bytes, symlink: bool = False) -> ZipMember:
    return ZipMember(name, data, zlib.crc32(data) & 0xFFFFFFFF, len(data), 0, symlink)


def _deflated_zeros_member(name: str, n_zeros: int, declared: int | None = None) -> ZipMember:
    return ZipMember(
        name,
        deflate_zeros(n_zeros),
        crc32_zeros(n_zeros),
        n_zeros if declared is None else declared,
    )


def zip_inputs(folder: Path, series_dicom: bytes, escape: Path) -> list[Hostile]:
    """Zip bombs and zip-slip archives (for the service's zipped-series upload)."""
    specs: list[tuple[str, str, list[ZipMember], bool, str]] = [
        (
            "zip_bomb_1gib",
            "zip_bomb",
            [_deflated_zeros_member("00001.dcm", GIB)],
            True,
            "one member inflating to 1 GiB",
        ),
        (
            "zip_bomb_lying_size",
            "zip_bomb",
            [_deflated_zeros_member("00001.dcm", 256 * CHUNK, declared=1000)],
            False,
            "declares 1000 bytes, inflates to 256 MiB",
        ),
        (
            "zip_bomb_shared_member",
            "zip_bomb",
            [shared := _deflated_zeros_member("a.dcm", CHUNK)]
            + [replace(shared, offset_of=0) for _ in range(2999)],
            False,
            "3000 directory entries sharing one 1 MiB member",
        ),
        (
            "zip_bomb_5000_members",
            "zip_bomb",
            [_stored(f"{k:05d}.dcm", b"") for k in range(5000)],
            False,
            "5000 empty members",
        ),
        (
            "zip_slip_dotdot",
            "zip_slip",
            [_stored("../../../../../escape/evil_dotdot.dcm", series_dicom)],
            True,
            "member ../../../../../escape/evil_dotdot.dcm",
        ),
        (
            "zip_slip_absolute",
            "zip_slip",
            [_stored(str(escape / "evil_absolute.dcm"), series_dicom)],
            False,
            "member with an absolute name",
        ),
        (
            "zip_slip_symlink",
            "zip_slip",
            [
                _stored("evil_link.dcm", str(escape / "evil_target.dcm").encode(), True),
                _stored("00002.dcm", series_dicom),
            ],
            False,
            "a symlink member beside a slice",
        ),
    ]
    out = []
    for name, kind, members, quick, note in specs:
        path = folder / f"{name}.zip"
        path.write_bytes(zip_bytes(members))
        paths = (*CLI_PATHS, SERVICE_PREDICT, SERVICE_SEGMENT)
        out.append(Hostile(name, kind, path, paths=paths, quick=quick, note=note))
    return out


def series_zip(dicom: bytes) -> bytes:
    return zip_bytes([_stored("slice_00001.dcm", dicom)])


# ------------------------------------------------------------------ UIDs, PDF, SC


TRAVERSAL_UIDS = {
    "StudyInstanceUID": "1.2.3/../../../../escape/study_evil",
    "SeriesInstanceUID": "../../../../escape/series_evil",
    "SOPInstanceUID": "../../../../../../escape/uid_evil",
    "FrameOfReferenceUID": "/etc/passwd",
}


def image_dicom(name: str, pixels: np.ndarray, uids: dict[str, str] | None = None) -> Any:
    """A native DICOM of ``pixels`` (uint8 grey (H, W) or RGB (H, W, 3))."""
    samples = 3 if pixels.ndim == 3 else 1
    ds = dicom_dataset(name, *pixels.shape[:2], samples=samples, bits=8, uids=uids)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    return ds


def uid_traversal(folder: Path, grey: np.ndarray, rgb: np.ndarray) -> list[Hostile]:
    path = save_dicom(image_dicom("uid", grey, TRAVERSAL_UIDS), folder / "uid_traversal.dcm")
    # The classifier does not use UIDs, so the CLI paths classify the image. The service
    # checks every upload's UIDs against the UI grammar (its DICOM answers reference them)
    # and refuses with a fixed sentence: that is its clean outcome (expect "refuse").
    classify = ("predict", "evaluate", "stream-local", "stream-ray")
    file_input = Hostile(
        "uid_traversal",
        "uid_traversal",
        path,
        paths=(*CLI_PATHS, SERVICE_PREDICT),
        expect=dict.fromkeys(classify, "process"),
        quick=True,
        note="Study/Series/SOP Instance UIDs are relative and absolute paths (28 px image)",
    )
    zipped = folder / "uid_traversal_series.zip"
    zipped.write_bytes(series_zip(dicom_bytes(image_dicom("uidz", rgb, TRAVERSAL_UIDS))))
    zip_input = Hostile(
        "uid_traversal_series",
        "uid_traversal",
        zipped,
        paths=(*CLI_PATHS, SERVICE_PREDICT, SERVICE_SEGMENT),
        quick=True,
        note="the same UIDs in a zipped one-slice RGB series (DICOM SEG asked for)",
    )
    return [file_input, zip_input]


def pdf_document(text: str) -> bytes:
    """A minimal one-page PDF showing ``text``."""
    stream = f"BT /F1 12 Tf 72 720 Td (Patient: {text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % k + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (6, xref))
    return out.getvalue()


def encapsulated_pdf(folder: Path) -> list[Hostile]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    sop = _uid("pdf", "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = PDF_STORAGE, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid("pdf", "study"), _uid("pdf", "series")
    ds.PatientName, ds.PatientID = MARKER_TEXT, MARKER_TEXT + "-ID"
    ds.Modality = "DOC"
    ds.DocumentTitle = f"Report for {MARKER_TEXT}"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    document = pdf_document(MARKER_TEXT)
    ds.EncapsulatedDocument = document + (b"\x00" if len(document) % 2 else b"")
    path = save_dicom(ds, folder / "encapsulated_pdf.dcm")
    return [
        Hostile(
            "encapsulated_pdf",
            "encapsulated_pdf",
            path,
            quick=True,
            note="Encapsulated PDF Storage; the PDF names the patient",
        )
    ]


def burned_in_pixels(height: int = 64, width: int = 320) -> np.ndarray:
    """A grey image with the patient text drawn in it, and the pixel marker's bytes as the
    first row (so a byte search of an output finds pixels copied unchanged)."""
    import PIL.Image
    import PIL.ImageDraw

    image = PIL.Image.new("L", (width, height), 20)
    draw = PIL.ImageDraw.Draw(image)
    draw.text((4, 8), f"NAME: {MARKER_TEXT}", fill=255)
    draw.text((4, 32), "DOB 1970-01-01  MRN 0012345", fill=255)
    pixels = np.array(image)
    code = np.frombuffer(MARKER_PIXELS.encode(), dtype=np.uint8)
    pixels[0, : len(code)] = code
    return pixels


def burned_in_sc(folder: Path) -> list[Hostile]:
    pixels = burned_in_pixels()
    ds = image_dicom("sc", pixels)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SC_IMAGE_STORAGE
    ds.Modality, ds.ConversionType = "OT", "WSD"
    first = save_dicom(ds, folder / "burned_in_sc.dcm")
    ds = image_dicom("sc_says_no", pixels)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SC_IMAGE_STORAGE
    ds.Modality, ds.ConversionType = "CT", "WSD"
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    second = save_dicom(ds, folder / "burned_in_sc_says_no.dcm")
    return [
        Hostile(
            "burned_in_sc",
            "burned_in_sc",
            first,
            paths=("anonymize",),
            quick=True,
            note="Secondary Capture, modality OT, name burned into the pixels",
        ),
        Hostile(
            "burned_in_sc_says_no",
            "burned_in_sc",
            second,
            paths=("anonymize",),
            note="Secondary Capture of a CT screen claiming Burned In Annotation NO",
        ),
    ]


# ------------------------------------------------------------------ symlinks, truncation


def symlink_loops(folder: Path, good_png: bytes) -> list[Hostile]:
    only = folder / "loop_only"
    (only / "a" / "b").mkdir(parents=True)
    (only / "a" / "up").symlink_to("..")
    (only / "a" / "b" / "up2").symlink_to("../..")
    with_image = folder / "loop_with_image"
    (with_image / "a").mkdir(parents=True)
    (with_image / "a" / "image.png").write_bytes(good_png)
    (with_image / "a" / "up").symlink_to("..")
    (with_image / "a" / "again").symlink_to("../a")
    (with_image / "here").symlink_to(".")
    self_link = folder / "self_link_with_image"
    self_link.mkdir()
    (self_link / "image.png").write_bytes(good_png)
    (self_link / "loop.dcm").symlink_to("loop.dcm")
    paths = CLI_PATHS
    return [
        Hostile(
            "loop_only",
            "symlink_loop",
            only,
            paths=paths,
            quick=True,
            note="a/up -> .., a/b/up2 -> ../..; nothing else",
        ),
        Hostile(
            "loop_with_image",
            "symlink_loop",
            with_image,
            paths=paths,
            expect=dict.fromkeys(("predict", "stream-local", "stream-ray"), "process"),
            quick=True,
            note="one PNG; a/up -> .., a/again -> ../a, here -> .",
        ),
        Hostile(
            "self_link_with_image",
            "symlink_loop",
            self_link,
            paths=paths,
            expect=dict.fromkeys(("stream-local", "stream-ray"), "partial"),
            quick=True,
            note="one PNG beside loop.dcm -> loop.dcm (ELOOP)",
        ),
    ]


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    import PIL.Image

    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated_files(folder: Path, good_png: bytes, series: bytes, seed: int) -> list[Hostile]:
    import pydicom

    rng = np.random.default_rng(seed)
    noisy = rng.integers(0, 256, size=(256, 256), dtype=np.uint8)
    volume = rng.integers(0, 1000, size=(32, 32, 32)).astype(np.int16)
    nii = nifti_header(volume.shape, np.int16) + volume.tobytes(order="F")
    npy = io.BytesIO()
    np.save(npy, noisy.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct = pydicom.dcmread(CT_SLICE)
    ct.PatientName, ct.PatientID = MARKER_TEXT, MARKER_TEXT + "-ID"
    ct_bytes = dicom_bytes(ct)
    specs = (
        ("truncated_png.png", good_png[: len(good_png) // 2], True),
        ("truncated_jpeg.jpg", (j := _encoded(noisy, "JPEG"))[: int(len(j) * 0.4)], False),
        ("truncated_tiff.tif", (t := _encoded(noisy, "TIFF"))[: int(len(t) * 0.4)], False),
        ("truncated_dicom_header.dcm", ct_bytes[: ct_bytes.index(b"PHI") + 40], False),
        ("truncated_dicom_pixels.dcm", ct_bytes[: int(len(ct_bytes) * 0.6)], True),
        ("truncated_nifti.nii.gz", (g := gzip.compress(nii, mtime=0))[: len(g) // 2], False),
        ("truncated_nifti_plain.nii", nii[: len(nii) // 2], False),
        ("truncated_npy.npy", npy.getvalue()[: len(npy.getvalue()) // 2], False),
        ("truncated_series.zip", series[: len(series) // 2], False),
        ("empty.dcm", b"", False),
    )
    out = []
    for filename, data, quick in specs:
        path = folder / filename
        path.write_bytes(data)
        name = filename.split(".")[0]
        paths = (*CLI_PATHS, SERVICE_PREDICT) + (
            (SERVICE_SEGMENT,) if filename.endswith(".zip") else ()
        )
        out.append(Hostile(name, "truncated", path, paths=paths, quick=quick, note=filename))
    return out


# ------------------------------------------------------------------ pydicom's test files


def reads_fully(path: Path) -> tuple[bool, str]:
    """Whether pydicom reads ``path`` fully: ``dcmread`` without ``force``, every element's
    value, and the pixel array when there is pixel data; else the stage and the error type."""
    import pydicom

    stage = "dcmread"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            stage = "elements"
            for element in ds.iterall():
                _ = element.value
            if any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                stage = "pixels"
                _ = ds.pixel_array
    except Exception as exc:
        return False, f"{stage}: {type(exc).__name__}"
    return True, ""


QUICK_PYDICOM = ("MR_truncated.dcm", "no_meta.dcm", "ExplVR_LitEndNoMeta.dcm")


def is_legacy_data_set(path: Path) -> bool:
    """A data set written without the Part 10 preamble and file meta (as before 1993), that
    pydicom reads fully with ``force=True``, that names its SOP Class and SOP Instance and
    holds no pixel data: complete, merely old (without file meta the encoding is inferred,
    which every element decoding confirms for a header; pixel data could still be misread,
    so image-bearing files stay ``refuse``). De-identification is the right answer to such a
    file (the image paths still refuse it: it holds no image)."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            for element in ds.iterall():
                _ = element.value
    except Exception:
        return False
    return bool(ds.get("SOPClassUID")) and bool(ds.get("SOPInstanceUID")) and "PixelData" not in ds


def pydicom_malformed(
    folder: Path, names: tuple[str, ...] | None = None
) -> tuple[list[Hostile], dict]:
    """Every test file pydicom cannot read fully, copied under ``folder``; the good ones
    are counted (controls). ``names`` keeps only files of those names (a test's shortcut)."""
    from pydicom.data import get_testdata_files

    files = sorted({Path(p) for p in get_testdata_files() if Path(p).is_file()})
    out, good, why, scanned = [], 0, {}, 0
    for k, source in enumerate(files):  # k: the file's place in the full list (stable names)
        if names is not None and source.name not in names:
            continue
        scanned += 1
        ok, reason = reads_fully(source)
        if ok:
            good += 1
            continue
        path = folder / f"{k:03d}_{source.name}"
        shutil.copyfile(source, path)
        name = f"pydicom_{k:03d}_{source.name}"
        why[name] = reason
        legacy = reason == "dcmread: InvalidDicomError" and is_legacy_data_set(source)
        out.append(
            Hostile(
                name,
                "pydicom_malformed",
                path,
                expect={"anonymize": "process"} if legacy else {},
                quick=source.name in QUICK_PYDICOM,
                note=f"{source.parent.name}/{source.name}: {reason}"
                + ("; a complete data set without a preamble (pre-Part 10)" if legacy else ""),
            )
        )
    return out, {"files": scanned, "read_fully": good, "malformed": len(out), "why": why}


# ------------------------------------------------------------------ the corpus


@dataclass
class Corpus:
    inputs: list[Hostile]
    controls: dict[str, Any]
    escape: Path
    pydicom: dict


def good_images(n: int = 64) -> np.ndarray:
    with np.load(PNEUMONIA) as data:
        return np.array(data["test_images"][:n])


def build_corpus(root: Path, seed: int = 0, pydicom_names: tuple[str, ...] | None = None) -> Corpus:
    """Write every input and control under ``root``; ``pydicom_names`` limits the pydicom
    test files scanned to those names (a test's shortcut; None scans them all)."""
    root.mkdir(parents=True, exist_ok=True)
    escape = root / "escape"  # must stay absent: zip-slip members aim here
    folder = root / "corpus"
    folder.mkdir()
    images = good_images(2)
    good_png = _encoded(images[0], "PNG")
    rgb = np.stack([images[0]] * 3, axis=-1).repeat(3, axis=0).repeat(3, axis=1)  # 84 px
    good_dicom = dicom_bytes(image_dicom("control", images[1]))
    good_series = series_zip(dicom_bytes(image_dicom("control_series", rgb)))
    controls = root / "controls"
    controls.mkdir()
    (controls / "good.png").write_bytes(good_png)
    (controls / "good.dcm").write_bytes(good_dicom)
    (controls / "good_series.zip").write_bytes(good_series)
    evaluate_set = []
    for k, image in enumerate(good_images(6)[1:]):
        evaluate_set.append(controls / f"evaluate_{k}.png")
        evaluate_set[-1].write_bytes(_encoded(image, "PNG"))
    inputs: list[Hostile] = []
    inputs += nifti_bombs(folder)
    inputs += dicom_bombs(folder)
    inputs += png_bombs(folder)
    inputs += zip_inputs(folder, good_dicom_with_marker(images[1]), escape)
    inputs += uid_traversal(folder, images[1], rgb)
    inputs += encapsulated_pdf(folder)
    inputs += burned_in_sc(folder)
    inputs += symlink_loops(folder, good_png)
    inputs += truncated_files(folder, good_png, good_series, seed)
    pydicom_folder = folder / "pydicom"
    pydicom_folder.mkdir()
    malformed, scan = pydicom_malformed(pydicom_folder, pydicom_names)
    inputs += malformed
    for item in inputs:
        if not item.paths:
            item.paths = (*CLI_PATHS, SERVICE_PREDICT)
    names = [item.name for item in inputs]
    assert len(names) == len(set(names)), "input names must be unique"
    return Corpus(
        inputs=inputs,
        controls={
            "good_png": controls / "good.png",
            "good_dicom": controls / "good.dcm",
            "good_series": controls / "good_series.zip",
            "evaluate_set": evaluate_set,
        },
        escape=escape,
        pydicom=scan,
    )


def good_dicom_with_marker(pixels: np.ndarray) -> bytes:
    return dicom_bytes(image_dicom("slice", pixels))


# ------------------------------------------------------------------ measuring children


def _tree_rss(proc: Any) -> int:
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


@dataclass
class ChildResult:
    rc: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    peak_rss_mib: float
    killed: str = ""


#: Runs the command as its child and writes the peak RSS of its waited-for descendants:
#: the child is forked from this small process, not from the benchmark (whose own RSS a
#: forked child's ``ru_maxrss`` would start from).
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(rc if rc >= 0 else 128 - rc)\n"
)


def run_child(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    timeout_s: float,
    guard_mib: float,
) -> ChildResult:
    """Run ``argv``; poll its process tree's RSS every 20 ms (and take the launcher's
    ``RUSAGE_CHILDREN`` peak); kill the tree past ``timeout_s`` or ``guard_mib``."""
    import psutil

    out, err, peak_file = cwd / ".stdout", cwd / ".stderr", cwd / ".maxrss"
    start = time.perf_counter()
    with open(out, "wb") as so, open(err, "wb") as se:
        child = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(peak_file), *argv],
            stdout=so,
            stderr=se,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    proc = psutil.Process(child.pid)
    peak, killed = 0, ""
    while child.poll() is None:
        peak = max(peak, _tree_rss(proc))
        elapsed = time.perf_counter() - start
        if not killed and elapsed > timeout_s:
            killed = f"killed after {timeout_s:.0f} s"
        elif not killed and peak > guard_mib * 2**20:
            killed = f"killed: process tree over {guard_mib:.0f} MiB"
        if killed:
            _kill_group(child.pid)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    _reap_group(child.pid)
    maxrss_kib = int(peak_file.read_text() or 0) if peak_file.exists() else 0
    stdout, stderr = out.read_bytes(), err.read_bytes()
    for path in (out, err, peak_file):
        path.unlink(missing_ok=True)
    peak_mib = max(peak / 2**20, maxrss_kib / 1024)
    return ChildResult(child.returncode, stdout, stderr, seconds, peak_mib, killed)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _reap_group(pgid: int, wait_s: float = 15.0) -> None:
    """Give what the child left in its process group (Ray's daemons) ``wait_s`` to exit,
    then kill it."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)
    _kill_group(pgid)


def _service_state(relative: str) -> bool:
    """The supervisor's folder under ``serve --processes`` (``medlens-serve-state-*``): its
    metrics store gains a process's files at that process's first request and lives as long
    as the service. Not a request's leftover; ``Service.stop`` checks that it goes at exit."""
    return relative.split(os.sep, 1)[0].startswith("medlens-serve-state-")


def snapshot(folder: Path) -> set[str]:
    """Every entry under ``folder`` (relative paths), torch's ``torchinductor_*`` cache left
    out; links are not followed."""
    found: set[str] = set()
    if not folder.exists():
        return found
    for top, dirs, files in os.walk(folder):
        rel = os.path.relpath(top, folder)
        if rel == "." and dirs:
            dirs[:] = [d for d in dirs if not d.startswith("torchinductor_")]
        for name in dirs + files:
            found.add(os.path.normpath(os.path.join(rel, name)))
    return found


def litter(folder: Path) -> list[str]:
    """Half-written files left in an output folder (``*.tmp``, ``*.partial``)."""
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith((".tmp", ".partial")) and not p.is_symlink()
    )


def find_markers(blobs: Iterator[tuple[str, bytes]]) -> list[str]:
    """``where:marker`` for every blob holding a PHI marker (the pixel marker is allowed
    inside an anonymize quarantine folder, where flagged files go on purpose)."""
    text, pixels = MARKER_TEXT.encode(), MARKER_PIXELS.encode()
    found = []
    for where, data in blobs:
        if text in data:
            found.append(f"{where}:name")
        if pixels in data and "quarantine" not in Path(where).parts:
            found.append(f"{where}:pixels")
    return found


def output_blobs(folder: Path) -> Iterator[tuple[str, bytes]]:
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield str(path.relative_to(folder)), path.read_bytes()


def escaped_files(root: Path, escape: Path) -> list[str]:
    """Anything named ``*evil*`` under ``root`` outside the corpus, in the corpus's
    ``escape`` folder (where zip-slip members aim), or in an ``escape`` folder beside any
    folder above ``root`` (where ``../../..`` UIDs would land): a write that got out."""
    found = []
    for top, dirs, files in os.walk(root):
        if Path(top) == root:
            dirs[:] = [d for d in dirs if d not in ("corpus", "controls")]
        found += [os.path.join(top, n) for n in dirs + files if "evil" in n]
    for folder in {escape, *(parent / "escape" for parent in root.parents)}:
        if folder.is_dir():
            found += [str(p) for p in folder.rglob("*evil*")]
    return sorted(set(found))


# ------------------------------------------------------------------ the CLI paths


def medlens_argv() -> list[str]:
    script = Path(sys.executable).with_name("medlens")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medlens"]


@dataclass
class Bench:
    """What every trial needs: folders, runs, limits."""

    root: Path
    corpus: Corpus
    class_run: Path
    seg_run: Path
    args: argparse.Namespace
    ray: bool
    counter: int = 0

    def trial_dir(self) -> Path:
        """A fresh folder for one trial (``out/``, ``tmp/``) and Ray's session folder."""
        self.counter += 1
        folder = self.root / "trials" / f"{self.counter:04d}"
        (folder / "out").mkdir(parents=True)
        (folder / "tmp").mkdir()
        (self.root / "r" / f"{self.counter}").mkdir(parents=True)  # Ray's session folder
        return folder

    def env(self, folder: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MEDLENS_TOKENS",)}
        env.update(
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            TMPDIR=str(folder / "tmp"),
            RAY_TMPDIR=str(self.root / "r" / f"{self.counter}"),
            MEDLENS_DEID_KEY="benchmark-key-not-a-secret-0123456789",
            PYTHONHASHSEED=str(self.args.seed),
        )
        return env


def _one_line(stderr: bytes) -> tuple[int, str, bool]:
    """``(error lines, the first, traceback?)`` of a child's stderr."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    errors = [line for line in lines if line.startswith("error:")]
    return (
        len(errors),
        (errors[0] if errors else ""),
        "Traceback" in stderr.decode(errors="replace"),
    )


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def cli_argv(bench: Bench, path: str, target: Path, folder: Path) -> list[str]:
    """The command of one CLI trial (the evaluate one also lays out its data folder)."""
    out = folder / "out"
    base, run = medlens_argv(), str(bench.class_run)
    predict = [*base, "predict", run, str(target), "--out", str(out / "predictions.csv")]
    if path == "predict":
        return [*predict, "--quiet"]
    if path in ("stream-local", "stream-ray"):
        return [*predict, "--engine", path.split("-")[1], "--workers", "1", "--quiet"]
    if path == "evaluate":
        data = folder / "data"  # 5 good images beside it: a split needs 3 in the largest class
        for k, image in enumerate(bench.corpus.controls["evaluate_set"]):
            label = data / ("normal", "pneumonia")[k % 2]
            label.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, label / f"good_{k}.png")
        _place(target, data / "pneumonia" / target.name)
        evaluation = str(out / "evaluation")
        return [
            *base,
            "evaluate",
            run,
            "--data",
            str(data),
            "--format",
            "folder",
            "--out",
            evaluation,
        ]
    if path == "anonymize":
        return [*base, "anonymize", str(target), str(out / "anonymized")]
    raise ValueError(path)


def _place(source: Path, dest: Path) -> None:
    """A copy of a file, or of a folder with its links kept as links."""
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=True)
    else:
        shutil.copyfile(source, dest)


def judge_cli(
    path: str, expect: str, result: ChildResult, out: Path, is_folder: bool
) -> tuple[bool, str, str]:
    """``(clean, outcome, line)`` of one CLI trial (see the module docstring)."""
    n_errors, line, traceback = _one_line(result.stderr)
    outcome = result.killed or f"exit {result.rc}"
    if result.killed:
        return False, outcome, line
    one_line_refusal = result.rc == 2 and n_errors == 1 and not traceback
    finished = result.rc == 0 and not traceback
    if path == "anonymize":
        rows = _csv_rows(out / "anonymized" / "deidentification_log.csv")
        statuses = Counter(r["status"] for r in rows)
        if result.rc == 0:
            reasons = sorted({r["reason"] for r in rows if r["reason"]})
            line = f"{dict(statuses)}: {'; '.join(reasons)}"[:300]
        if expect == "process":
            return finished and statuses.get("ok", 0) > 0, outcome, line
        never_ok = bool(rows) and statuses.get("ok", 0) == 0
        return one_line_refusal or (finished and never_ok), outcome, line
    if path == "evaluate":
        rows = _csv_rows(out / "evaluation" / "predictions.csv")
        if expect == "process":
            return finished and len(rows) == 6, outcome, line or f"{len(rows)} cases"
        return one_line_refusal, outcome, line
    rows = _csv_rows(out / "predictions.csv")
    bad = [r for r in rows if r.get("error")]
    if result.rc == 0:
        line = (bad[0]["error"] if bad else f"{len(rows)} rows, no error")[:300]
    good = len(rows) - len(bad)
    if expect == "process":
        return finished and good == 1 and not bad, outcome, line
    if expect == "partial":
        return finished and good == 1 and len(bad) >= 1, outcome, line
    nothing_read = is_folder and finished and not rows  # a folder holding no image at all
    if path == "predict":
        return one_line_refusal or nothing_read, outcome, line
    every_row_an_error = finished and bool(rows) and len(bad) == len(rows)
    return every_row_an_error or nothing_read or (one_line_refusal and is_folder), outcome, line


def cli_trial(bench: Bench, item: Hostile | None, path: str, target: Path) -> dict:
    """One input (or a control, ``item`` None) through one CLI path."""
    folder = bench.trial_dir()
    argv = cli_argv(bench, path, target, folder)
    timeout = bench.args.timeout_s
    result = run_child(argv, bench.env(folder), folder / "out", timeout, bench.args.rss_guard_mib)
    expect = item.expected(path) if item else "process"
    clean, outcome, line = judge_cli(path, expect, result, folder / "out", target.is_dir())
    left = sorted(snapshot(folder / "tmp")) + litter(folder / "out")
    blobs = [("stdout", result.stdout), ("stderr", result.stderr)]
    phi = find_markers(iter([*blobs, *output_blobs(folder / "out")]))
    escaped = escaped_files(bench.root, bench.corpus.escape)
    row = {
        "input": item.name if item else target.name,
        "kind": item.kind if item else "control",
        "path": path,
        "expect": expect,
        "outcome": outcome,
        "line": line,
        "clean": bool(clean and not phi and not escaped),
        "seconds": round(result.seconds, 3),
        "peak_rss_mib": round(result.peak_rss_mib, 1),
        "rss_increase_mib": None,
        "temp_files_left": len(left),
        "temp_left": left[:5],
        "phi_found": phi,
        "escaped": escaped,
        "command": " ".join(argv),
    }
    if not bench.args.keep_trials:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(bench.root / "r" / f"{bench.counter}", ignore_errors=True)
    return row


# ------------------------------------------------------------------ the service


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _proc_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (``VmHWM``); False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Service:
    """``medlens serve`` in a child process with its own ``TMPDIR`` and log."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.bench = bench
        self.tmp = bench.root / f"{name}_tmp"
        self.tmp.mkdir()
        self.log = bench.root / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "MEDLENS_TOKENS"}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(self.tmp))
        argv = [
            *medlens_argv(),
            "serve",
            str(bench.class_run),
            str(bench.seg_run),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-upload-mb",
            str(bench.args.max_upload_mb),
            "--timeout-s",
            str(bench.args.service_timeout_s),
        ]
        self.processes = int(bench.args.service_processes)
        if self.processes > 1:
            argv += ["--processes", str(self.processes)]
        self.argv = argv
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen(
                argv, stdout=handle, stderr=handle, env=env, start_new_session=True
            )
        self._wait_ready()
        self.guard_tripped = False
        threading.Thread(target=self._guard, daemon=True).start()

    def _guard(self) -> None:
        """Kill the server when its RSS passes ``--rss-guard-mib`` (a bomb it decoded)."""
        limit = self.bench.args.rss_guard_mib
        while self.alive():
            with contextlib.suppress(OSError):
                if self.rss_mib() > limit:
                    self.guard_tripped = True
                    _kill_group(self.process.pid)
            time.sleep(0.05)

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the service did not become ready in 180 s; see {self.log}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mib(self) -> float:
        """The server's RSS (MiB): its process, or its whole tree under ``--processes``."""
        if self.processes > 1:
            import psutil

            return _tree_rss(psutil.Process(self.process.pid)) / 2**20
        return _proc_kib(self.process.pid, "VmRSS") / 1024

    def reset_peak(self) -> bool:
        """Reset the peak RSS; False (no exact peak) under ``--processes``."""
        return self.processes == 1 and reset_peak(self.process.pid)

    def stop(self) -> list[str]:
        """Stop it (SIGTERM, as a process manager would) and return what it left in its
        TMPDIR."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)
                self.process.wait(timeout=30)
        return sorted(snapshot(self.tmp))


def endpoint_query(path: str, target: Path) -> str:
    if path == SERVICE_PREDICT:
        return f"/v1/predict?model={CLASS_MODEL}&heatmap=false"
    fmt = "dicom-seg" if target.suffix == ".zip" else "auto"
    return f"/v1/segment?model={SEG_MODEL}&format={fmt}"


def service_trial(
    bench: Bench, service: Service, item: Hostile | None, path: str, target: Path
) -> dict:
    import httpx

    query = endpoint_query(path, target)
    body = target.read_bytes()
    pid = service.process.pid
    before_files = snapshot(service.tmp)
    log_offset = service.log.stat().st_size
    rss_before = service.rss_mib()
    exact = service.reset_peak()
    start = time.perf_counter()
    try:
        response = httpx.post(
            service.url + query,
            files={"file": (target.name, body, "application/octet-stream")},
            timeout=bench.args.service_timeout_s + 30,
        )
        status, content = response.status_code, response.content
        media = response.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        status, content, media = 0, type(exc).__name__.encode(), ""
    seconds = time.perf_counter() - start
    left: list[str] = []
    for _ in range(30):  # a job removes its folder when its thread is done with it
        left = sorted(p for p in snapshot(service.tmp) - before_files if not _service_state(p))
        if not left:
            break
        time.sleep(0.1)
    alive = service.alive()
    peak = _proc_kib(pid, "VmHWM") / 1024 if alive and exact else service.rss_mib() if alive else 0
    with open(service.log, "rb") as handle:
        handle.seek(log_offset)
        log_text = handle.read()
    line = ""
    if status == 200:
        line = f"200 OK, {len(content)} bytes"
    else:
        try:
            detail = json.loads(content).get("detail", "")
            line = detail if isinstance(detail, str) else json.dumps(detail)[:300]
        except (ValueError, AttributeError):
            line = content[:200].decode(errors="replace")
    expect = item.expected(path) if item else "process"
    if expect == "process":
        clean = status == 200
    else:
        clean = 400 <= status < 500 and bool(line) and "\n" not in line
    # A DICOM SEG answered for an upload carries the same patient's Patient module by
    # design (it is that patient's result): not counted as a leak, only recorded.
    dicom_result = status == 200 and media == "application/dicom"
    blobs = [("service log", log_text)] + ([] if dicom_result else [("response", content)])
    phi = find_markers(iter(blobs))
    in_result = dicom_result and bool(find_markers(iter([("response", content)])))
    escaped = escaped_files(bench.root, bench.corpus.escape)
    outcome = f"HTTP {status}" if status else f"no answer ({line})"
    if not alive:
        outcome += "; killed over the RSS guard" if service.guard_tripped else "; it died"
    return {
        "input": item.name if item else target.name,
        "kind": item.kind if item else "control",
        "path": path,
        "expect": expect,
        "outcome": outcome,
        "line": line,
        "clean": bool(clean and alive and not phi and not escaped),
        "seconds": round(seconds, 4),
        "peak_rss_mib": round(peak, 1),
        "rss_increase_mib": round(peak - rss_before, 1),
        "temp_files_left": len(left),
        "temp_left": left[:5],
        "phi_found": phi,
        "phi_in_dicom_result": in_result,
        "escaped": escaped,
        "status": status,
        "command": (
            f"curl -s -F 'file=@{target}' '{service.url}{query}'  # served by: "
            + " ".join(service.argv)
        ),
    }


# ------------------------------------------------------------------ the soak


def soak(bench: Bench, service: Service, good: list[bytes], bad: list[bytes]) -> dict:
    """``--clients`` clients for ``--soak-seconds``: good PNGs, and corpus files a
    ``--bad-fraction`` of the time; the server's RSS every second."""
    import httpx

    args = bench.args
    seconds = float(args.soak_seconds)
    warmup = min(SOAK_WARMUP_S, seconds / 4)
    records: list[tuple[str, int, float]] = []
    rss: list[tuple[float, float]] = []
    start = time.monotonic()
    deadline = start + seconds
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if service.alive():
                rss.append((time.monotonic() - start, service.rss_mib()))
            stop.wait(1.0)

    def client(k: int) -> None:
        rng = random.Random(args.seed * 1000 + k)
        query = f"{service.url}/v1/predict?model={CLASS_MODEL}&heatmap=false"
        with httpx.Client(timeout=args.service_timeout_s + 30) as session:
            while time.monotonic() < deadline:
                kind = "bad" if bad and rng.random() < args.bad_fraction else "good"
                body = rng.choice(bad if kind == "bad" else good)
                begin = time.perf_counter()
                try:
                    answer = session.post(
                        query, files={"file": ("upload.bin", body, "application/octet-stream")}
                    )
                    status = answer.status_code
                except httpx.HTTPError:
                    status = 0
                records.append((kind, status, time.perf_counter() - begin))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - start
    good_ms = sorted(1000 * s for kind, status, s in records if kind == "good" and status == 200)
    after_warmup = next((mib for t, mib in rss if t >= warmup), None)
    end = rss[-1][1] if rss else None
    bad_statuses = Counter(status for kind, status, _ in records if kind == "bad")
    return {
        "seconds": round(elapsed, 1),
        "warmup_seconds": warmup,
        "clients": args.clients,
        "bad_fraction": args.bad_fraction,
        "requests": len(records),
        "requests_per_s": round(len(records) / elapsed, 1) if elapsed else None,
        "good_requests": sum(1 for kind, _, _ in records if kind == "good"),
        "good_not_200": sum(1 for kind, s, _ in records if kind == "good" and s != 200),
        "bad_requests": sum(bad_statuses.values()),
        "bad_statuses": {str(k): v for k, v in sorted(bad_statuses.items())},
        "bad_answered_4xx_fraction": (
            round(sum(v for k, v in bad_statuses.items() if 400 <= k < 500) / n_bad, 4)
            if (n_bad := sum(bad_statuses.values()))
            else None
        ),
        "errors_5xx": sum(1 for _, status, _ in records if status >= 500),
        "connection_errors": sum(1 for _, status, _ in records if status == 0),
        "p50_ms": round(statistics.median(good_ms), 2) if good_ms else None,
        "p95_ms": round(float(np.percentile(good_ms, 95)), 2) if good_ms else None,
        "max_ms": round(good_ms[-1], 2) if good_ms else None,
        "rss_after_warmup_mib": round(after_warmup, 1) if after_warmup else None,
        "rss_end_mib": round(end, 1) if end else None,
        "rss_growth": round(end / after_warmup - 1, 4) if end and after_warmup else None,
        "rss_samples_mib": [round(mib, 1) for _, mib in rss[:: max(1, len(rss) // 120)]],
        "service_alive": service.alive(),
    }


# ------------------------------------------------------------------ runs to serve


def train_runs(out: Path, fraction: float) -> tuple[Path, Path]:
    """small_cnn on ``fraction`` of PneumoniaMNIST (28 px, 1 epoch) and a 2D U-Net on 3 DRIVE
    images (96 px, 1 epoch), as benchmarks/serving.py and the tests' fixtures train them."""
    import torch

    from medlens.commands.train import train_and_report
    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(1)
    classify = {
        "name": CLASS_MODEL,
        "seed": 0,
        "output_dir": str(out),
        "data": {"format": "medmnist", "path": str(PNEUMONIA), "train_fraction_used": fraction},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 64, "lr": 3e-3, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 0},
    }
    class_run = train_from_config(parse_config(classify), progress=False)
    drive = out.parent / "drive"
    for split, ids, tag in (
        ("training", ("21", "22", "23"), "training"),
        ("test", ("01",), "test"),
    ):
        for sub in ("images", "1st_manual", "mask"):
            (drive / split / sub).mkdir(parents=True, exist_ok=True)
        for number in ids:
            for sub, name in (
                ("images", f"{number}_{tag}.tif"),
                ("1st_manual", f"{number}_manual1.gif"),
                ("mask", f"{number}_{tag}_mask.gif"),
            ):
                (drive / split / sub / name).symlink_to(DRIVE / split / sub / name)
    segment = {
        "name": SEG_MODEL,
        "task": "segmentation",
        "seed": 0,
        "output_dir": str(out),
        "data": {"format": "segmentation", "layout": "drive", "path": str(drive)},
        "preprocess": [
            {"name": "select_channels", "channels": [1]},
            {"name": "fixed_scale", "divisor": 255},
            {"name": "resize", "size": [96, 96]},
        ],
        "model": {"name": "unet"},
        "segmentation": {"patch_size": [64, 64], "patches_per_image": 4, "save_masks": "none"},
        "train": {"epochs": 1, "batch_size": 4, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 0},
    }
    segment["data"]["val_fraction"] = 0.34
    seg_run = train_and_report(parse_config(segment), progress=False)
    return class_run, seg_run


# ------------------------------------------------------------------ main


def summarize(rows: list[dict], soak_result: dict | None, shutdown_left: int) -> dict:
    """The summary of the per-input rows (controls left out) and the soak."""
    trials = [r for r in rows if r["kind"] != "control"]
    increases = [r["rss_increase_mib"] for r in trials if r["rss_increase_mib"] is not None]
    soak_result = soak_result or {}
    return {
        "inputs_tried": len(trials),
        "refused_cleanly": sum(1 for r in trials if r["clean"]),
        "errors_5xx": sum(
            1 for r in trials if r.get("status") is not None and not 0 < r["status"] < 500
        ),
        "max_rss_increase_mib": round(max(increases), 1) if increases else None,
        "temp_files_left": sum(r["temp_files_left"] for r in trials) + shutdown_left,
        "phi_leaks": sum(1 for r in trials if r["phi_found"]),
        "soak_errors_5xx": soak_result.get("errors_5xx"),
        "soak_rss_growth": soak_result.get("rss_growth"),
        "soak_p95_ms": soak_result.get("p95_ms"),
        "corpus_inputs": len({r["input"] for r in trials}),
        "trials_expected_to_process": sum(1 for r in trials if r["expect"] != "refuse"),
        "escaped_files": len({e for r in trials for e in r["escaped"]}),
        "not_clean": [f"{r['input']} @ {r['path']}" for r in trials if not r["clean"]],
    }


def targets_met(summary: dict) -> dict[str, bool | None]:
    def check(key: str, ok: Any) -> bool | None:
        return None if summary.get(key) is None else bool(ok(summary[key]))

    return {
        "refused_cleanly": summary["refused_cleanly"] == summary["inputs_tried"],
        "errors_5xx": check("errors_5xx", lambda v: v == 0),
        "max_rss_increase_mib": check("max_rss_increase_mib", lambda v: v <= RSS_LIMIT_MIB),
        "temp_files_left": check("temp_files_left", lambda v: v == 0),
        "phi_leaks": check("phi_leaks", lambda v: v == 0),
        "soak_errors_5xx": check("soak_errors_5xx", lambda v: v == 0),
        "soak_rss_growth": check("soak_rss_growth", lambda v: v <= 0.10),
        "soak_p95_ms": check("soak_p95_ms", lambda v: v < 100),
    }


def select(inputs: list[Hostile], args: argparse.Namespace) -> list[Hostile]:
    chosen = [i for i in inputs if i.quick] if args.quick else list(inputs)
    if args.only:
        names = set(args.only.split(","))
        chosen = [i for i in inputs if i.name in names]
        missing = names - {i.name for i in chosen}
        if missing:
            raise SystemExit(f"unknown inputs: {sorted(missing)}")
    return chosen


def run_paths(args: argparse.Namespace, ray: bool) -> list[str]:
    paths = list(PATHS) if not args.paths else args.paths.split(",")
    unknown = set(paths) - set(PATHS)
    if unknown:
        raise SystemExit(f"unknown paths: {sorted(unknown)}; choose from {PATHS}")
    if not ray and "stream-ray" in paths:
        paths.remove("stream-ray")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="corpus subset, 20 s soak")
    parser.add_argument("--soak-seconds", type=float, default=None, help="default 600 (quick 20)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--service-processes", type=int, default=1, help="medlens serve --processes N"
    )
    parser.add_argument("--bad-fraction", type=float, default=0.2)
    parser.add_argument("--max-upload-mb", type=float, default=16.0)
    parser.add_argument("--service-timeout-s", type=float, default=60.0)
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per CLI trial")
    parser.add_argument("--rss-guard-mib", type=float, default=6144.0, help="kill a trial above")
    parser.add_argument("--only", help="comma-separated input names (reproduce a row)")
    parser.add_argument("--paths", help=f"comma-separated paths among {', '.join(PATHS)}")
    parser.add_argument("--corpus-dir", type=Path, help="build the corpus here and keep it")
    parser.add_argument("--build-only", action="store_true", help="build the corpus and stop")
    parser.add_argument("--keep-trials", action="store_true", help="keep every trial's folder")
    parser.add_argument("--out", type=Path, help="default results/robustness[_quick].json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.soak_seconds is None:
        args.soak_seconds = 20.0 if args.quick else 600.0
    random.seed(args.seed)
    np.random.seed(args.seed)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import importlib.util

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    ray = importlib.util.find_spec("ray") is not None
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="mlrb-"))  # short: Ray's socket paths live under it
    try:
        corpus_root = args.corpus_dir or root
        if args.corpus_dir and (args.corpus_dir / "corpus").exists():
            raise SystemExit(f"{args.corpus_dir} already holds a corpus; name a new folder")
        corpus = build_corpus(corpus_root, args.seed)
        if corpus_root != root:
            for name in ("corpus", "controls"):
                (root / name).symlink_to(corpus_root / name)
        print(f"corpus: {len(corpus.inputs)} inputs, {time.perf_counter() - t0:.1f} s", flush=True)
        if args.build_only:
            for item in corpus.inputs:
                print(f"{item.name}\t{item.kind}\t{item.path}")
            return
        result = run(args, root, corpus, ray, t0)
    finally:
        if not args.keep_trials:
            shutil.rmtree(root, ignore_errors=True)
    default = "robustness_quick.json" if args.quick else "robustness.json"
    if (args.only or args.paths) and not args.out:
        default = "robustness_subset.json"
    out = write_json_atomic(args.out or HERE / "results" / default, result)
    print(f"wrote {out}")
    print(json.dumps(result["summary"], indent=1))


def run(args: argparse.Namespace, root: Path, corpus: Corpus, ray: bool, t0: float) -> dict:
    chosen = select(corpus.inputs, args)
    paths = run_paths(args, ray)
    t_train = time.perf_counter()
    class_run, seg_run = train_runs(root / "runs", 0.05 if args.quick else 0.25)
    print(f"runs trained in {time.perf_counter() - t_train:.1f} s", flush=True)
    bench = Bench(root, corpus, class_run, seg_run, args, ray)
    rows: list[dict] = []
    baselines: dict[str, float] = {}
    controls = corpus.controls
    control_for = {
        "predict": controls["good_png"],
        "evaluate": controls["good_png"],
        "stream-local": controls["good_png"],
        "stream-ray": controls["good_png"],
        "anonymize": controls["good_dicom"],
        SERVICE_PREDICT: controls["good_png"],
        SERVICE_SEGMENT: controls["good_series"],
    }
    for path in [p for p in paths if p in CLI_PATHS]:
        runs = [cli_trial(bench, None, path, control_for[path]) for _ in range(2)]
        baselines[path] = max(r["peak_rss_mib"] for r in runs)
        for row in runs:
            row["rss_increase_mib"] = round(row["peak_rss_mib"] - baselines[path], 1)
        rows += runs
        print(f"control {path}: {runs[-1]['outcome']}, {baselines[path]:.0f} MiB", flush=True)
        for item in chosen:
            if path not in item.paths:
                continue
            row = cli_trial(bench, item, path, item.path)
            row["rss_increase_mib"] = round(row["peak_rss_mib"] - baselines[path], 1)
            if row["rss_increase_mib"] > RSS_LIMIT_MIB and not row["outcome"].startswith("kill"):
                # A process tree's RSS varies from run to run (a Ray worker more or less is
                # ~500 MiB): run it twice more and keep the median of the three peaks.
                peaks = [row["peak_rss_mib"]]
                peaks += [cli_trial(bench, item, path, item.path)["peak_rss_mib"] for _ in "12"]
                row["peak_rss_mib_runs"] = peaks
                row["peak_rss_mib"] = statistics.median(peaks)
                row["rss_increase_mib"] = round(row["peak_rss_mib"] - baselines[path], 1)
            rows.append(row)
            _progress(row)
    service_paths = [p for p in paths if p not in CLI_PATHS]
    soak_result, shutdown_left, service_info = None, 0, {}
    if service_paths or args.soak_seconds > 0:
        service = Service(bench, "service")
        restarts = 0
        exact_peak = service.reset_peak()
        try:
            for path in service_paths:
                # twice: the first request of a route also pays its lazy set-up
                runs = [service_trial(bench, service, None, path, control_for[path]) for _ in "12"]
                baselines[path] = min(r["rss_increase_mib"] for r in runs)
                rows += runs
                control = runs[-1]
                print(f"control {path}: {control['outcome']} {control['line'][:60]}", flush=True)
                for item in chosen:
                    if path not in item.paths or item.path.is_dir():
                        continue
                    row = service_trial(bench, service, item, path, item.path)
                    row["rss_increase_mib"] = round(row["rss_increase_mib"] - baselines[path], 1)
                    rows.append(row)
                    _progress(row)
                    if not service.alive():
                        shutdown_left += len(service.stop())
                        service = Service(bench, f"service{restarts + 1}")
                        restarts += 1
            if args.soak_seconds > 0:
                good = [_encoded(image, "PNG") for image in good_images(64)]
                limit = int(args.max_upload_mb * 2**20)
                bad = [
                    item.path.read_bytes()
                    for item in chosen
                    if SERVICE_PREDICT in item.paths
                    and item.expected(SERVICE_PREDICT) == "refuse"
                    and item.path.is_file()
                    and item.path.stat().st_size < limit
                ]
                print(f"soak: {args.soak_seconds:.0f} s, {args.clients} clients", flush=True)
                soak_result = soak(bench, service, good, bad)
                print({k: v for k, v in soak_result.items() if k != "rss_samples_mib"})
        finally:
            left = service.stop()
            shutdown_left += len(left)
            service_info = {
                "command": " ".join(service.argv),
                "restarts_after_a_crash": restarts,
                "left_in_tmpdir_after_stop": left[:20],
                "processes": service.processes,
                "peak_rss_method": "VmHWM after clear_refs"
                if exact_peak
                else "RSS of the process tree after"
                if service.processes > 1
                else "VmRSS after",
            }
    summary = summarize(rows, soak_result, shutdown_left)
    wall = time.perf_counter() - t0
    print(f"wall time {wall:.0f} s")
    return {
        "benchmark": "robustness",
        "machine": machine_info(),
        "wall_seconds": round(wall, 1),
        "config": {
            "quick": args.quick,
            "paths": paths,
            "ray": ray,
            "soak_seconds": args.soak_seconds,
            "clients": args.clients,
            "bad_fraction": args.bad_fraction,
            "max_upload_mb": args.max_upload_mb,
            "service_timeout_s": args.service_timeout_s,
            "trial_timeout_s": args.timeout_s,
            "rss_guard_mib": args.rss_guard_mib,
            "voxel_budget": DEFAULT_MAX_VOXELS,
            "markers": [MARKER_TEXT, MARKER_PIXELS],
            "runs": "small_cnn 1 epoch PneumoniaMNIST 28 px; unet 1 epoch 3 DRIVE images 96 px",
            "seed": args.seed,
        },
        "corpus": {
            "inputs_run": len(chosen),
            "by_kind": dict(Counter(item.kind for item in chosen)),
            "all_inputs_by_kind": dict(Counter(item.kind for item in corpus.inputs)),
            "pydicom_test_files": {k: v for k, v in corpus.pydicom.items() if k != "why"},
            "inputs": [
                {"name": i.name, "kind": i.kind, "note": i.note, "bytes": _size(i.path)}
                for i in chosen
            ],
        },
        "baselines_mib": {k: round(v, 1) for k, v in baselines.items()},
        "baselines_note": (
            "CLI paths: the peak RSS of the good control's process tree (the larger of two "
            "runs); service routes: the server's RSS increase for the good control request "
            "(the smaller of two); each row's rss_increase_mib is relative to its path's"
        ),
        "service": service_info,
        "summary": summary,
        "targets": TARGETS,
        "targets_met": targets_met(summary),
        "soak": soak_result,
        "rows": rows,
    }


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.lstat().st_size for p in path.rglob("*"))
    return path.stat().st_size


def _progress(row: dict) -> None:
    mark = "ok " if row["clean"] else "NOT"
    print(
        f"{mark} {row['path']:<20} {row['input']:<44} {row['outcome']:<10} "
        f"{row['seconds']:>7.2f}s {row['rss_increase_mib']:>+7.0f} MiB  {row['line'][:70]}",
        flush=True,
    )


if __name__ == "__main__":
    main()
