"""The voxel budget for DICOM: declared sizes read before any pixel is decoded.

Three ways a DICOM file can expand far beyond its size, and where each is stopped:

- **Declared size.** Rows x Columns x NumberOfFrames x SamplesPerPixel is checked against the
  budget (``check_dicom_budget``) before ``pixel_array``, whatever the transfer syntax.
- **Compressed frames that disagree with the header.** A JPEG, JPEG-LS or JPEG 2000 frame
  carries its own size, and the decoder allocates that one; ``check_codestreams`` reads each
  frame's SOF / SIZ marker and refuses a frame larger than the header says.
- **Deflate.** Deflated Explicit VR Little Endian compresses the whole data set, header
  included, and pydicom inflates all of it in one call even to read the header.
  ``read_deflated`` inflates step by step: only as far as the pixel data for the header,
  and then no further than the header's declared size for the whole file.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from medlens.data.budget import check_voxels
from medlens.errors import InputError

PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # (Float/DoubleFloat) PixelData
HEADER_STEP = 1 << 20  # inflate the header 1 MiB at a time (x4 per step)
HEADER_LIMIT = 64 << 20  # no real header before the pixel data is larger
TRAILER_ALLOWANCE = 1 << 20  # elements after the pixel data (padding) a deflated file may hold
_JPEG_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC)})
_JPEG_SOF |= frozenset({*range(0xCD, 0xD0), 0xF7})  # 0xF7: JPEG-LS SOF55
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: markers without a length


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword, default)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def declared_dims(ds: Dataset) -> tuple[int, int, int, int]:
    """``(channels, frames, rows, columns)`` the header declares; a palette image counts the
    three channels it expands to."""
    samples = max(_int(ds, "SamplesPerPixel", 1), 1)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        samples = max(samples, 3)
    frames = max(_int(ds, "NumberOfFrames", 1), 1)
    return samples, frames, _int(ds, "Rows", 0), _int(ds, "Columns", 0)


def describe_dims(ds: Dataset) -> str:
    """The declared size in words, for an error message."""
    samples, frames, rows, columns = declared_dims(ds)
    bits = _int(ds, "BitsAllocated", 16)
    decoded = samples * frames * rows * columns * bits / 8
    return (
        f"{rows} rows x {columns} columns x {frames} frames x {samples} samples per pixel, "
        f"{bits} bits allocated: {_bytes_in_words(decoded)} decoded"
    )


def _bytes_in_words(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:,.0f} TiB"


def check_dicom_budget(ds: Dataset, path: str | Path, limit: int | None = None) -> int:
    """Refuse a data set whose declared pixels are over the voxel budget; the voxel count.

    Raises:
        VoxelBudgetError: over the budget.
    """
    return check_voxels(path, declared_dims(ds), limit, describe_dims(ds))


def declared_pixel_bytes(ds: Dataset) -> int:
    """The bytes of native (uncompressed) pixel data the header declares."""
    samples = max(_int(ds, "SamplesPerPixel", 1), 1)
    _, frames, rows, columns = declared_dims(ds)
    bits = max(_int(ds, "BitsAllocated", 16), 1)
    return (samples * frames * rows * columns * bits + 7) // 8


def check_codestreams(ds: Dataset, path: str | Path) -> None:
    """Refuse a JPEG, JPEG-LS or JPEG 2000 frame whose own size is larger than the header's
    Rows x Columns (or has more components than samples), before the decoder allocates it.

    A frame whose codestream cannot be parsed is left to the decoder, which reports it.

    Raises:
        InputError: naming the frame and both sizes.
    """
    syntax = _syntax(ds)
    if syntax is None or "PixelData" not in ds:
        return
    if syntax in JPEG2000TransferSyntaxes:
        parse = _j2k_size
    elif syntax in JPEGTransferSyntaxes or syntax in JPEGLSTransferSyntaxes:
        parse = _jpeg_size
    else:
        return
    samples, frames, rows, columns = declared_dims(ds)
    try:
        codestreams = generate_frames(ds.PixelData, number_of_frames=frames)
        for index, frame in enumerate(codestreams):
            size = parse(frame)
            if size is None:
                continue
            height, width, components = size
            if height > rows or width > columns or components > max(samples, 4):
                raise InputError(
                    path,
                    f"frame {index} of its {syntax.name} pixel data declares {height} x {width} "
                    f"with {components} components, more than the header's {rows} x {columns} "
                    f"x {samples}; refused before decoding",
                )
    except InputError:
        raise
    except Exception:  # damaged encapsulation: the decoder reports it
        return


def _syntax(ds: Dataset) -> UID | None:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return UID(str(uid)) if uid is not None else None


def _jpeg_size(frame: bytes) -> tuple[int, int, int] | None:
    """``(height, width, components)`` from a JPEG or JPEG-LS frame's SOF marker."""
    if frame[:2] != b"\xff\xd8":
        return None
    offset = 2
    end = len(frame)
    while offset + 4 <= end:
        if frame[offset] != 0xFF:
            return None
        marker = frame[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any SOF
            return None
        (length,) = struct.unpack(">H", frame[offset + 2 : offset + 4])
        if marker in _JPEG_SOF:
            if offset + 10 > end:
                return None
            height, width = struct.unpack(">HH", frame[offset + 5 : offset + 9])
            return height, width, frame[offset + 9]
        offset += 2 + length
    return None


def _j2k_size(frame: bytes) -> tuple[int, int, int] | None:
    """``(height, width, components)`` from a JPEG 2000 (or HTJ2K) frame's SIZ marker,
    inside a JP2 wrapper or bare."""
    start = frame.find(b"\xff\x4f\xff\x51", 0, 1 << 16)
    if start < 0 or start + 42 > len(frame):
        return None
    siz = start + 2  # at the SIZ marker
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", frame[siz + 6 : siz + 22])
    (components,) = struct.unpack(">H", frame[siz + 38 : siz + 40])
    return max(ysiz - yosiz, 0), max(xsiz - xosiz, 0), components


def transfer_syntax_of(path: str | Path) -> UID | None:
    """The transfer syntax in a Part 10 file's meta group (without reading the data set), or
    None when the file has no ``DICM`` marker or an unreadable meta group."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
            if len(head) < 132 or head[128:] != b"DICM":
                return None
            meta = _read_meta(handle)
        uid = meta.get("TransferSyntaxUID")
        return UID(str(uid)) if uid is not None else None
    except FileNotFoundError:
        raise
    except Exception:  # a malformed meta group: pydicom's full reader says what is wrong
        return None


def _read_meta(handle: BinaryIO) -> FileMetaDataset:
    def past_group_2(tag: BaseTag, vr: str | None, length: int) -> bool:
        return tag >> 16 != 2

    return FileMetaDataset(read_dataset(handle, False, True, stop_when=past_group_2))


class _Inflater:
    """A raw deflate stream inflated on demand, never past the size asked for."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.engine = zlib.decompressobj(-zlib.MAX_WBITS)
        self.data = bytearray()
        self.exhausted = False

    def fill(self, size: int) -> None:
        """Inflate until ``size`` bytes are out or the stream ends."""
        while len(self.data) < size and not self.exhausted:
            chunk = self.engine.unconsumed_tail or self.source.read(1 << 16)
            if not chunk:
                self.exhausted = True
                break
            self.data += self.engine.decompress(chunk, size - len(self.data))
            if self.engine.eof:
                self.exhausted = True

    @property
    def truncated(self) -> bool:
        return self.exhausted and not self.engine.eof


def read_deflated(path: Path, header_only: bool, limit: int | None) -> FileDataset:
    """Read a Deflated Explicit VR Little Endian file without inflating more than needed.

    Args:
        path: the file.
        header_only: stop before the pixel data (only the header is inflated).
        limit: the voxel budget for a full read (None: ``voxel_budget()``); the declared size
            is checked before the pixel data is inflated, and the stream may not inflate to
            more than the header declares (plus ``TRAILER_ALLOWANCE``).

    Raises:
        VoxelBudgetError: a full read of a file declaring more voxels than the budget.
        InputError: a header over ``HEADER_LIMIT``, a stream that inflates past its declared
            size, or one that is cut short.
    """
    with open(path, "rb") as handle:
        preamble = handle.read(128)
        handle.read(4)
        file_meta = _read_meta(handle)
        inflater = _Inflater(handle)
        header, header_end = _deflated_header(path, inflater)
        if header_only:
            dataset = header
        else:
            check_dicom_budget(header, path, limit)
            allowed = header_end + 12 + declared_pixel_bytes(header) + TRAILER_ALLOWANCE
            inflater.fill(allowed + 1)
            if len(inflater.data) > allowed:
                raise InputError(
                    path,
                    f"its deflated data set inflates to more than the {allowed:,} bytes its "
                    f"header declares ({describe_dims(header)}); refused",
                )
            if inflater.truncated:
                raise InputError(path, "DICOM file is corrupt or truncated (deflate stream)")
            dataset = read_dataset(io.BytesIO(bytes(inflater.data)), False, True)
    return FileDataset(
        str(path),
        dataset,
        preamble=preamble,
        file_meta=file_meta,
        is_implicit_VR=False,
        is_little_endian=True,
    )


def _deflated_header(path: Path, inflater: _Inflater) -> tuple[Dataset, int]:
    """The data set up to its pixel data, and where the pixel data starts (inflated)."""
    reached: list[bool] = []

    def at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        if tag in PIXEL_TAGS:
            reached.append(True)
            return True
        return False

    size = HEADER_STEP
    while True:
        inflater.fill(size)
        reached.clear()
        buffer = io.BytesIO(bytes(inflater.data))
        try:
            header = read_dataset(buffer, False, True, stop_when=at_pixels)
            if reached or inflater.exhausted:
                return header, buffer.tell()
        except Exception:
            if inflater.exhausted:
                raise
        if size >= HEADER_LIMIT:
            raise InputError(
                path,
                f"its deflated header runs past {HEADER_LIMIT // 2**20} MiB before any pixel "
                "data; refused",
            )
        size *= 4


def is_deflated(syntax: UID | None) -> bool:
    return syntax == DeflatedExplicitVRLittleEndian
