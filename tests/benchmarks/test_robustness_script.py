"""benchmarks/robustness.py builds the hostile inputs it claims, and writes every summary key.

The corpus is built once (pydicom's test files limited to three names); each test checks
one kind of input against what the benchmark's docstring says it is. The end-to-end run
(``--quick`` limited to one input, a 3 s soak) trains two small runs and starts a service,
so it is marked slow.
"""

from __future__ import annotations

import errno
import gzip
import importlib.util
import io
import json
import os
import stat
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pydicom
import pytest
from pydicom.encaps import generate_frames

from medlens.data.budget import DEFAULT_MAX_VOXELS
from medlens.pacs.uids import is_uid
from medlens.serve.inputs import is_unsafe_member

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "robustness.py"
PYDICOM_NAMES = ("MR_truncated.dcm", "no_meta.dcm", "CT_small.dcm")


def _load():
    spec = importlib.util.spec_from_file_location("robustness_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


rb = _load()


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    return rb.build_corpus(tmp_path_factory.mktemp("robustness"), 0, PYDICOM_NAMES)


def _of_kind(corpus, kind: str) -> dict:
    items = {item.name: item for item in corpus.inputs if item.kind == kind}
    assert items, kind
    return items


def _read(path: Path | io.BytesIO, **kwargs) -> pydicom.Dataset:
    """The data set with every value decoded (the traversal "UIDs" warn when decoded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, **kwargs)
        for _ in ds.iterall():
            pass
    return ds


def test_nifti_bombs_declare_more_than_the_budget_in_a_few_bytes(corpus) -> None:
    bombs = _of_kind(corpus, "nifti_bomb")
    for item in bombs.values():
        assert rb.declared_nifti_voxels(item.path) > DEFAULT_MAX_VOXELS, item.name
    assert bombs["nifti_gz_bomb_4096cube"].path.stat().st_size < 10_000
    assert bombs["nifti2_gz_bomb"].path.stat().st_size < 10_000
    zeros = bombs["nifti_gz_bomb_zeros"].path
    assert zeros.stat().st_size < 100_000
    with gzip.open(zeros) as handle:  # a whole, valid gzip of 352 + 64 MiB bytes
        inflated = sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 22), b""))
    assert inflated == 352 + 64 * 2**20


def test_a_dicom_bomb_in_every_compressed_transfer_syntax(corpus) -> None:
    bombs = _of_kind(corpus, "dicom_bomb")
    syntaxes = set()
    for item in bombs.values():
        ds = _read(item.path, stop_before_pixels=True)
        syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
        assert ds.PatientName == rb.MARKER_TEXT
        if item.name != "dicom_bomb_deflate_1gib":
            assert rb.declared_dicom_voxels(item.path) > DEFAULT_MAX_VOXELS, item.name
            assert item.path.stat().st_size < 10_000, item.name
    assert set(rb.compressed_syntaxes()) <= syntaxes
    assert len(rb.compressed_syntaxes()) >= 20


def test_frame_bombs_declare_a_huge_frame_under_a_small_header(corpus) -> None:
    from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

    bombs = _of_kind(corpus, "dicom_frame_bomb")
    syntaxes = set()
    for item in bombs.values():
        ds = _read(item.path)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        assert (ds.Rows, ds.Columns) == (64, 64)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        height, width = rb.declared_frame_size(frame)
        assert height * width > DEFAULT_MAX_VOXELS, item.name
    assert syntaxes == {*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes}


def test_the_deflate_bomb_inflates_far_beyond_its_header() -> None:
    data = rb.deflate_bomb_bytes(8 * 2**20)
    assert len(data) < 64_000
    ds = _read(io.BytesIO(data), stop_before_pixels=True)
    assert (ds.Rows, ds.Columns) == (64, 64)
    start = data.index(b"DICM") + 4
    meta_length = int.from_bytes(data[start + 8 : start + 12], "little")
    body = zlib.decompressobj(-15).decompress(data[start + 12 + meta_length :])
    assert len(body) > 8 * 2**20


def test_png_bombs_declare_more_than_the_budget(corpus) -> None:
    for item in _of_kind(corpus, "png_bomb").values():
        assert rb.declared_png_voxels(item.path) > DEFAULT_MAX_VOXELS, item.name
        assert item.path.stat().st_size < 1_000_000, item.name
    for channels, depth, mode in ((3, 8, "RGB"), (1, 1, "1"), (1, 8, "L")):
        image = PIL.Image.open(io.BytesIO(rb.png_zeros(300, 200, depth, channels)))
        image.load()  # the zero-filled builder makes whole, valid PNGs
        assert (image.size, image.mode) == ((300, 200), mode)
        assert not np.asarray(image).any()


def test_zip_bombs_and_zip_slip(corpus) -> None:
    bombs = _of_kind(corpus, "zip_bomb")
    one = zipfile.ZipFile(bombs["zip_bomb_1gib"].path)
    assert [m.file_size for m in one.infolist()] == [2**30]
    assert bombs["zip_bomb_1gib"].path.stat().st_size < 2_000_000
    assert zipfile.ZipFile(bombs["zip_bomb_lying_size"].path).infolist()[0].file_size == 1000
    shared = zipfile.ZipFile(bombs["zip_bomb_shared_member"].path).infolist()
    assert len(shared) == 3000 and len({m.header_offset for m in shared}) == 1
    assert sum(m.file_size for m in shared) == 3000 * 2**20
    assert len(zipfile.ZipFile(bombs["zip_bomb_5000_members"].path).infolist()) == 5000
    slips = _of_kind(corpus, "zip_slip")
    for name in ("zip_slip_dotdot", "zip_slip_absolute"):
        (member,) = zipfile.ZipFile(slips[name].path).namelist()
        assert is_unsafe_member(member), member
    link = zipfile.ZipFile(slips["zip_slip_symlink"].path).infolist()[0]
    assert stat.S_ISLNK(link.external_attr >> 16)
    assert not corpus.escape.exists()


def test_traversal_uids_are_paths_not_uids(corpus) -> None:
    items = _of_kind(corpus, "uid_traversal")
    ds = _read(items["uid_traversal"].path)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert "../" in ds[keyword].value and not is_uid(ds[keyword].value)
    assert ds.pixel_array.shape == (28, 28)
    member = zipfile.ZipFile(items["uid_traversal_series"].path)
    sliced = _read(io.BytesIO(member.read(member.namelist()[0])))
    assert not is_uid(sliced.SOPInstanceUID) and sliced.SamplesPerPixel == 3


def test_the_pdf_and_the_secondary_captures_carry_the_patient_text(corpus) -> None:
    pdf = _read(_of_kind(corpus, "encapsulated_pdf")["encapsulated_pdf"].path)
    assert pdf.SOPClassUID == rb.PDF_STORAGE
    assert pdf.EncapsulatedDocument.startswith(b"%PDF-")
    assert rb.MARKER_TEXT.encode() in pdf.EncapsulatedDocument
    for item in _of_kind(corpus, "burned_in_sc").values():
        sc = _read(item.path)
        assert sc.SOPClassUID == rb.SC_IMAGE_STORAGE and item.paths == ("anonymize",)
        assert rb.MARKER_PIXELS.encode() in sc.pixel_array[0].tobytes()
        assert (sc.pixel_array[8:20] > 200).any()  # the drawn text


def test_symlink_loops_point_back_up(corpus) -> None:
    loops = _of_kind(corpus, "symlink_loop")
    only = loops["loop_only"].path
    assert (only / "a" / "up").resolve() == only.resolve()
    assert (only / "a" / "b" / "up2").resolve() == only.resolve()
    assert not [p for p in only.rglob("*") if p.is_file()]
    image = loops["loop_with_image"]
    assert (image.path / "here").resolve() == image.path.resolve()
    assert image.expected("predict") == "process" and image.expected("anonymize") == "refuse"
    with pytest.raises(OSError) as raised:
        os.stat(loops["self_link_with_image"].path / "loop.dcm")
    assert raised.value.errno == errno.ELOOP


def test_truncated_files_are_cut_short(corpus) -> None:
    items = _of_kind(corpus, "truncated")
    assert items["empty"].path.stat().st_size == 0
    assert not rb.reads_fully(items["truncated_dicom_pixels"].path)[0]
    with pytest.raises(OSError):
        PIL.Image.open(items["truncated_png"].path).load()
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(items["truncated_nifti"].path.read_bytes())
    assert rb.MARKER_TEXT.encode() in items["truncated_dicom_header"].path.read_bytes()


def test_only_the_pydicom_files_it_cannot_read_fully_are_inputs(corpus) -> None:
    malformed = _of_kind(corpus, "pydicom_malformed")
    assert {item.path.name.split("_", 1)[1] for item in malformed.values()} == {
        "MR_truncated.dcm",
        "no_meta.dcm",
    }
    assert corpus.pydicom["files"] == 3 and corpus.pydicom["read_fully"] == 1  # CT_small.dcm
    for item in malformed.values():
        assert not rb.reads_fully(item.path)[0]


def test_every_input_has_a_unique_name_and_known_paths(corpus) -> None:
    names = [item.name for item in corpus.inputs]
    assert len(names) == len(set(names))
    for item in corpus.inputs:
        assert item.path.exists() or item.path.is_symlink(), item.name
        assert set(item.paths) <= set(rb.PATHS), item.name
    assert {item.kind for item in corpus.inputs if item.quick} == {
        item.kind for item in corpus.inputs
    }


def test_markers_are_found_and_the_quarantine_may_keep_pixels() -> None:
    name, pixels = rb.MARKER_TEXT.encode(), rb.MARKER_PIXELS.encode()
    found = rb.find_markers(
        iter(
            [
                ("out/a.csv", b"x" + name),
                ("quarantine/p/s.dcm", pixels),
                ("quarantine/p/t.dcm", name),
                ("b.dcm", pixels),
                ("clean.dcm", b"nothing"),
            ]
        )
    )
    assert found == ["out/a.csv:name", "quarantine/p/t.dcm:name", "b.dcm:pixels"]


def test_the_summary_has_every_key() -> None:
    rows = [
        {
            "input": "x",
            "kind": "truncated",
            "path": "predict",
            "expect": "refuse",
            "clean": True,
            "rss_increase_mib": 3.0,
            "temp_files_left": 0,
            "phi_found": [],
            "escaped": [],
        },
        {
            "input": "x",
            "kind": "truncated",
            "path": rb.SERVICE_PREDICT,
            "expect": "refuse",
            "clean": False,
            "rss_increase_mib": 1.0,
            "temp_files_left": 1,
            "phi_found": ["response:name"],
            "escaped": [],
            "status": 500,
        },
    ]
    summary = rb.summarize(rows, {"errors_5xx": 0, "rss_growth": 0.01, "p95_ms": 9.0}, 0)
    assert set(rb.SUMMARY_KEYS) <= set(summary)
    assert (summary["inputs_tried"], summary["refused_cleanly"], summary["errors_5xx"]) == (2, 1, 1)
    assert (summary["temp_files_left"], summary["phi_leaks"]) == (1, 1)
    met = rb.targets_met(summary)
    assert set(met) == set(rb.TARGETS) and met["soak_p95_ms"] and not met["errors_5xx"]


@pytest.mark.slow
def test_quick_mode_end_to_end_writes_every_summary_key(shared_data: Path, tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "robustness.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--only",
        "truncated_png",
        "--paths",
        f"predict,{rb.SERVICE_PREDICT}",
        "--soak-seconds",
        "3",
        "--clients",
        "2",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(rb.SUMMARY_KEYS) <= set(result["summary"])
    assert result["summary"]["inputs_tried"] == 2
    assert result["summary"]["refused_cleanly"] == 2, result["summary"]["not_clean"]
    assert result["soak"]["requests"] > 0 and result["summary"]["soak_errors_5xx"] == 0


def test_the_supervisors_metrics_store_is_not_a_requests_leftover() -> None:
    """Under ``serve --processes`` a process's first request adds its files to the live
    metrics store; a request's own folder left behind still counts."""
    assert rb._service_state(os.path.join("medlens-serve-state-ab12", "metrics", "counter_7.db"))
    assert not rb._service_state(os.path.join("medlens-serve-x1", "job", "upload.png"))
    assert not rb._service_state("medlens-serve-state.png")
