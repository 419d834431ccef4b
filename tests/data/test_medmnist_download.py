"""``download_medmnist``: official names/MD5s, offline errors, verification, atomic writes."""

from __future__ import annotations

import io
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medlens.data.medmnist_catalog import MEDMNIST_CATALOG, medmnist_url
from medlens.data.medmnist_download import download_medmnist, file_md5, official_md5
from medlens.errors import InputError, UnknownNameError


@pytest.fixture(autouse=True)
def _official_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the real Zenodo URL, whatever the caller's environment says."""
    monkeypatch.delenv("MEDLENS_MEDMNIST_BASE_URL", raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """urlopen that fails as it does offline; records the URLs asked for."""
    asked: list[str] = []

    def offline(url: str, timeout: float | None = None) -> None:
        asked.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return asked


@pytest.fixture
def cut_off_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A local server (the base URL points at it) announcing 1000 bytes, sending 10, closing."""
    asked: list[str] = []

    class CutOff(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), CutOff)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MEDLENS_MEDMNIST_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_official_md5s_of_the_real_files(adrenal_npz: Path) -> None:
    assert (
        file_md5(adrenal_npz)
        == official_md5("adrenalmnist3d", 28)
        == "bbd3c5a5576322bc4cdfea780653b1ce"
    )
    big = adrenal_npz.with_name("adrenalmnist3d_64.npz")
    assert file_md5(big) == official_md5("adrenalmnist3d", 64) == "17721accfe9fb005146a47d33bc54b2f"
    assert official_md5("pneumoniamnist", 28) == "28209eda62fecd6e6a2d98b1501bb15f"


def test_catalog_covers_every_size_of_the_18_datasets() -> None:
    assert len(MEDMNIST_CATALOG) == 18
    for flag, info in MEDMNIST_CATALOG.items():
        expected = {28, 64} if info.volumetric else {28, 64, 128, 224}
        assert set(info.md5) == expected, flag
        assert all(len(md5) == 32 for md5 in info.md5.values())
    assert medmnist_url("pneumoniamnist", 64) == (
        "https://zenodo.org/records/10519652/files/pneumoniamnist_64.npz?download=1"
    )


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    official = "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1"
    monkeypatch.delenv("MEDLENS_MEDMNIST_BASE_URL", raising=False)
    assert medmnist_url("pneumoniamnist") == official
    monkeypatch.setenv("MEDLENS_MEDMNIST_BASE_URL", "")
    assert medmnist_url("pneumoniamnist") == official
    monkeypatch.setenv("MEDLENS_MEDMNIST_BASE_URL", "http://mirror.local/medmnist/")
    assert medmnist_url("pneumoniamnist", 64) == (
        "http://mirror.local/medmnist/pneumoniamnist_64.npz?download=1"
    )


def test_cut_off_download_is_an_error_even_unverified(
    tmp_path: Path, cut_off_server: list[str]
) -> None:
    with pytest.raises(InputError, match="closed after 10 of 1000 bytes") as info:
        download_medmnist("pneumoniamnist", 28, tmp_path, verify=False)
    assert str(tmp_path.resolve()) in str(info.value)
    assert cut_off_server == ["/pneumoniamnist.npz?download=1"]
    assert list(tmp_path.iterdir()) == []


def test_malformed_base_url_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLENS_MEDMNIST_BASE_URL", "mirror.local/medmnist")
    with pytest.raises(InputError, match="could not download mirror.local/medmnist/pneumoniamnist"):
        download_medmnist("pneumoniamnist", 28, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_offline_error_names_file_and_folder(tmp_path: Path, no_network: list[str]) -> None:
    root = tmp_path / "cache"
    with pytest.raises(InputError) as info:
        download_medmnist("pneumoniamnist", size=64, root=root)
    message = str(info.value)
    assert "pneumoniamnist_64.npz" in message and str(root.resolve()) in message
    assert "Name or service not known" in message
    assert no_network == [medmnist_url("pneumoniamnist", 64)]
    assert list(root.iterdir()) == []  # no half-written file left behind


def test_existing_official_files_are_verified_without_network(
    tmp_path: Path, adrenal_npz: Path, no_network: list[str]
) -> None:
    shutil.copy(adrenal_npz, tmp_path / "adrenalmnist3d.npz")
    shutil.copy(adrenal_npz.with_name("adrenalmnist3d_64.npz"), tmp_path)
    assert download_medmnist("adrenalmnist3d", 28, tmp_path) == tmp_path / "adrenalmnist3d.npz"
    assert download_medmnist("adrenalmnist3d", 64, tmp_path) == tmp_path / "adrenalmnist3d_64.npz"
    assert no_network == []


def test_non_official_file_is_refused_unless_unverified(
    tmp_path: Path, pneumonia_npz: Path, no_network: list[str]
) -> None:
    shutil.copy(pneumonia_npz, tmp_path / "pneumoniamnist.npz")  # the modified subset
    with pytest.raises(
        InputError, match="does not match the official 28209eda62fecd6e6a2d98b1501bb15f"
    ):
        download_medmnist("pneumoniamnist", 28, tmp_path)
    assert (
        download_medmnist("pneumoniamnist", 28, tmp_path, verify=False)
        == tmp_path / "pneumoniamnist.npz"
    )


def test_download_is_checked_then_renamed(
    tmp_path: Path, adrenal_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = adrenal_npz.read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload))
    path = download_medmnist("adrenalmnist3d", 28, tmp_path / "new")
    assert path.read_bytes() == payload
    assert sorted(p.name for p in path.parent.iterdir()) == ["adrenalmnist3d.npz"]


def test_corrupted_download_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"<html>quota</html>")
    )
    with pytest.raises(InputError, match="MD5"):
        download_medmnist("adrenalmnist3d", 28, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_flag_and_size(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="pneumonia_mnist"):
        download_medmnist("pneumonia_mnist", 28, tmp_path)
    with pytest.raises(UnknownNameError, match="available: 28, 64"):
        download_medmnist("adrenalmnist3d", 128, tmp_path)
