"""``medlens.serve.inputs``: how an upload's zip is unpacked, refused, and counted."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from medlens.serve.inputs import extract_series
from medlens.serve.service_errors import ServiceError


def test_a_zip_declaring_more_than_the_budget_is_refused_before_anything_is_unpacked(
    tmp_path: Path, zip_bytes
):
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_bytes({"a.dcm": bytes(600_000), "b.dcm": bytes(600_000)}))
    dest = tmp_path / "series"
    with pytest.raises(ServiceError) as refused:
        extract_series(archive, dest, max_bytes=1_000_000)
    assert refused.value.status_code == 413 and "unpacks to more than" in refused.value.reason
    assert not dest.exists()  # refused from the directory alone: nothing was written


def test_a_zip_within_the_budget_is_unpacked_under_server_chosen_names(tmp_path: Path, zip_bytes):
    archive = tmp_path / "ok.zip"
    archive.write_bytes(zip_bytes({"x/../../IM1": b"a" * 10} | {"__MACOSX/._IM1": b"junk"}))
    with pytest.raises(ServiceError):  # '..' in a member name is refused
        extract_series(archive, tmp_path / "s1", max_bytes=1_000)
    archive.write_bytes(zip_bytes({"dir/IM1": b"a" * 10, "IM2": b"b" * 20, "__MACOSX/._IM1": b"j"}))
    dest = extract_series(archive, tmp_path / "s2", max_bytes=1_000)
    assert sorted(p.name for p in dest.iterdir()) == ["00001.dcm", "00002.dcm"]
    assert (dest / "00002.dcm").read_bytes() == b"b" * 20


def test_a_zip_whose_directory_understates_a_member_never_unpacks_more_than_it_declares(
    tmp_path: Path, zip_bytes
):
    data = zip_bytes({"IM1": bytes(2**20)})
    # rewrite the declared uncompressed size (local header and central directory) to 10 bytes
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    lying = bytearray(data)
    struct.pack_into("<I", lying, local + 22, 10)
    struct.pack_into("<I", lying, central + 24, 10)
    archive = tmp_path / "lying.zip"
    archive.write_bytes(bytes(lying))
    with pytest.raises(ServiceError) as refused:
        extract_series(archive, tmp_path / "series", max_bytes=1_000)
    assert refused.value.status_code in (413, 422)
    written = sum(p.stat().st_size for p in (tmp_path / "series").glob("*"))
    assert written <= 1_000
