"""The voxel budget (issue 13): every reader refuses a decompression bomb from its header,
before decoding, in one ``VoxelBudgetError`` naming the file and the declared size vs the cap.

Each bomb is built here, tiny on disk: a gzipped NIfTI declaring 4096^3 voxels, DICOM files
declaring 65535 x 65535 x 10000 in deflated, RLE, JPEG and JPEG 2000 syntaxes, a PNG
declaring 60000 x 60000, a ``.npy`` header of 10^12 values. Refusing must not allocate the
declared size: each refusal is timed and its Python allocations traced.
"""

from __future__ import annotations

import gzip
import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pydicom
import pytest
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from medlens.data import dicom_series
from medlens.data.budget import (
    DEFAULT_MAX_VOXELS,
    MAX_VOXELS_ENV,
    VoxelBudgetError,
    check_voxels,
    voxel_budget,
)
from medlens.data.dicom import read_dicom_dataset, read_dicom_file
from medlens.data.dicom_seg import read_dicom_seg
from medlens.data.dicom_series import read_dicom_series
from medlens.data.masks import read_mask
from medlens.data.nifti import read_nifti
from medlens.data.numpy_file import read_npy
from medlens.data.raster import read_raster
from medlens.data.readers import read_image
from medlens.errors import ConfigError, InputError

HUGE = {"rows": 65535, "columns": 65535, "frames": 10000}  # 4.3e13 voxels, 80 TiB at 16 bits
MAX_SECONDS = 2.0  # a refusal reads a header: milliseconds; generous for a loaded CI machine
MAX_TRACED = 16 * 2**20  # bytes Python may allocate while refusing (the bombs declare TiB)


def _refused(read: Callable[[], object]) -> InputError:
    """Run ``read``, which must raise InputError, and check that it did so quickly and
    without allocating anything near the declared size."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InputError) as refusal:
            read()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"refusing took {elapsed:.2f} s"
    assert peak < MAX_TRACED, f"refusing allocated {peak / 2**20:.1f} MiB"
    return refusal.value


def _dicom(
    path: Path,
    syntax: UID,
    pixel_data: bytes,
    rows: int = 8,
    columns: int = 8,
    frames: int = 1,
    bits: int = 16,
    sop_class: UID = SecondaryCaptureImageStorage,
) -> Path:
    """A DICOM file whose header declares ``rows x columns x frames`` grey pixels, holding
    whatever ``pixel_data`` is given (encapsulated for compressed syntaxes)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.PatientName = "Doe^Jane"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.NumberOfFrames = frames
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixel_data
    if syntax.is_encapsulated:
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def _png_header_only(path: Path, width: int, height: int, colour_type: int = 0) -> Path:
    """A PNG whose IHDR declares ``width x height`` (8-bit), with a tiny IDAT (and a
    two-colour palette for colour type 3)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + (chunk(b"PLTE", b"\x00\x00\x00\xff\x00\x00") if colour_type == 3 else b"")
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
    return path


def test_the_budget_defaults_to_256_mi_voxels_and_is_set_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(MAX_VOXELS_ENV, raising=False)
    assert voxel_budget() == DEFAULT_MAX_VOXELS == 256 * 2**20
    assert check_voxels("ct", (1, 1024, 512, 512)) == DEFAULT_MAX_VOXELS  # thin-slice CT passes
    monkeypatch.setenv(MAX_VOXELS_ENV, "1_000")
    assert voxel_budget() == 1000
    assert voxel_budget(5) == 5  # an explicit budget (the service's option) wins
    for bad in ("many", "0", "-3"):
        monkeypatch.setenv(MAX_VOXELS_ENV, bad)
        with pytest.raises(ConfigError, match=MAX_VOXELS_ENV):
            voxel_budget()
    with pytest.raises(ConfigError):
        voxel_budget(0)


def test_a_gzipped_nifti_declaring_4096_cubed_is_refused_from_its_header(tmp_path: Path):
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.float32)
    bomb = tmp_path / "bomb.nii.gz"
    bomb.write_bytes(gzip.compress(header.binaryblock + b"\x00" * 4 + b"\x00" * 2**16))
    assert bomb.stat().st_size < 1000
    error = _refused(lambda: read_image(bomb))
    assert isinstance(error, VoxelBudgetError)
    assert error.path == str(bomb)
    assert "68,719,476,736 voxels (4096 x 4096 x 4096)" in error.reason
    assert f"limit of {DEFAULT_MAX_VOXELS:,}" in error.reason


def test_a_nifti_within_the_budget_is_read_and_a_smaller_budget_refuses_it(tmp_path: Path):
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    assert read_nifti(path, max_voxels=120).array.shape == (1, 4, 5, 6)
    error = _refused(lambda: read_nifti(path, max_voxels=119))
    assert "120 voxels (4 x 5 x 6), more than the limit of 119" in error.reason


@pytest.mark.parametrize(
    ("syntax", "pixel_data"),
    [
        (DeflatedExplicitVRLittleEndian, b"\x00" * 16),
        (RLELossless, encapsulate([b"\x00" * 64])),
        (JPEGBaseline8Bit, encapsulate([b"\xff\xd8\xff\xd9"])),
        (JPEG2000Lossless, encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])),
    ],
    ids=["deflate", "rle", "jpeg", "jpeg2000"],
)
def test_a_dicom_declaring_huge_frames_is_refused_before_decoding_in_every_syntax(
    tmp_path: Path, syntax: UID, pixel_data: bytes
):
    bomb = _dicom(tmp_path / "bomb.dcm", syntax, pixel_data, **HUGE)
    assert bomb.stat().st_size < 2000
    error = _refused(lambda: read_dicom_file(bomb))
    assert isinstance(error, VoxelBudgetError)
    assert error.declared == 65535 * 65535 * 10000
    assert "65535 rows x 65535 columns x 10000 frames" in error.reason
    assert "16 bits allocated" in error.reason and "TiB decoded" in error.reason
    assert isinstance(_refused(lambda: read_image(bomb)), VoxelBudgetError)


def test_a_deflated_dicom_whose_data_inflates_past_its_header_is_refused_without_inflating(
    tmp_path: Path,
):
    # an honest 16 x 16 header, then 64 MiB of zeros as pixel data: about 64 kB deflated
    bomb = _dicom(tmp_path / "big.dcm", DeflatedExplicitVRLittleEndian, bytes(64 * 2**20), 16, 16)
    assert bomb.stat().st_size < 200_000
    error = _refused(lambda: read_dicom_file(bomb))
    assert "inflates to more than" in error.reason and "16 rows x 16 columns" in error.reason
    # reading the header (grouping a series) inflates only up to the pixel data
    tracemalloc.start()
    try:
        header = read_dicom_dataset(bomb, header_only=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.Rows == 16 and "PixelData" not in header
    assert peak < MAX_TRACED


def test_an_honest_deflated_dicom_reads_as_pydicom_reads_it(dicom_testfile):
    path = dicom_testfile("image_dfl.dcm")
    expected = pydicom.dcmread(path)
    image = read_dicom_file(path)
    assert image.array.shape == (1, 512, 512)
    np.testing.assert_array_equal(image.array[0], expected.pixel_array.astype(np.float32))
    assert "Deflated" in image.meta["transfer_syntax"]
    header = read_dicom_dataset(path, header_only=True)
    assert header.SOPInstanceUID == expected.SOPInstanceUID and "PixelData" not in header


def test_a_jpeg_frame_larger_than_its_header_is_refused_before_the_decoder_allocates_it(
    tmp_path: Path,
):
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(buffer, format="JPEG")
    jpeg = bytearray(buffer.getvalue())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)  # the frame now says 60000^2
    path = _dicom(tmp_path / "lie.dcm", JPEGBaseline8Bit, encapsulate([bytes(jpeg)]), bits=8)
    error = _refused(lambda: read_dicom_file(path))
    assert "frame 0" in error.reason and "60000 x 60000" in error.reason
    assert "8 x 8" in error.reason and "before decoding" in error.reason


def test_a_real_jpeg_dicom_passes_the_frame_check(dicom_testfile):
    image = read_dicom_file(dicom_testfile("SC_rgb_jpeg_dcmtk.dcm"))
    assert image.array.shape == (3, 100, 100)


def test_a_png_declaring_60000_squared_is_refused_from_its_header(tmp_path: Path):
    bomb = _png_header_only(tmp_path / "bomb.png", 60000, 60000)
    error = _refused(lambda: read_image(bomb))
    assert isinstance(error, VoxelBudgetError)
    assert "3,600,000,000 voxels" in error.reason
    # under PIL's own limit but over the budget once its three channels are counted
    colour = _png_header_only(tmp_path / "colour.png", 12000, 12000, colour_type=2)
    error = _refused(lambda: read_raster(colour))
    assert "432,000,000 voxels (3 x 12000 x 12000)" in error.reason


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's, then ours
def test_a_palette_mask_declaring_a_huge_size_is_refused(tmp_path: Path):
    bomb = _png_header_only(tmp_path / "labels.png", 20000, 20000, colour_type=3)
    error = _refused(lambda: read_mask(bomb))
    assert isinstance(error, VoxelBudgetError)


def test_a_tiff_stack_and_a_npy_are_checked_against_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((5, 16, 16), dtype=np.uint16))
    assert read_image(stack).array.shape == (1, 5, 16, 16)
    monkeypatch.setenv(MAX_VOXELS_ENV, "500")
    error = _refused(lambda: read_image(stack))
    assert "1,280 voxels" in error.reason and "limit of 500" in error.reason
    monkeypatch.delenv(MAX_VOXELS_ENV)

    bomb = tmp_path / "bomb.npy"
    with open(bomb, "wb") as handle:  # a header declaring 10^12 float32 values, no data
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000, 100)}
        )
    error = _refused(lambda: read_npy(bomb))
    assert isinstance(error, VoxelBudgetError) and "(100000 x 100000 x 100)" in error.reason


def test_a_series_is_refused_on_its_total_before_any_slice_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "series"
    folder.mkdir()
    series_uid = generate_uid()
    for k in range(3):
        path = _dicom(folder / f"{k}.dcm", ExplicitVRLittleEndian, bytes(8 * 8 * 2))
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = k + 1
        ds.save_as(path)
    assert read_dicom_series(folder, max_voxels=192).array.shape == (1, 3, 8, 8)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a slice was decoded")

    monkeypatch.setattr(dicom_series, "dicom_pixels", no_decoding)
    error = _refused(lambda: read_dicom_series(folder, max_voxels=191))
    assert isinstance(error, VoxelBudgetError) and error.path == str(folder)
    assert "192 voxels (3 files of the series)" in error.reason


def test_a_dicom_seg_declaring_huge_frames_is_refused_before_highdicom_decodes_it(
    tmp_path: Path,
):
    seg_class = UID("1.2.840.10008.5.1.4.1.1.66.4")
    bomb = _dicom(
        tmp_path / "seg.dcm",
        RLELossless,
        encapsulate([b"\x00" * 64]),
        bits=1,
        sop_class=seg_class,
        **HUGE,
    )
    error = _refused(lambda: read_dicom_seg(bomb))
    assert isinstance(error, VoxelBudgetError) and "1 bits allocated" in error.reason
