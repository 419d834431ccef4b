"""``resolve_demo_data``: a missing demo file is downloaded once into the cache, never beside
the missing path; offline or with a wrong MD5 it stops with one line saying what to put where.

A local ``http.server`` stands in for Zenodo (``MEDLENS_MEDMNIST_BASE_URL``); it serves the
real PneumoniaMNIST subset, whose MD5 is patched into the catalogue where a download must pass.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medlens.commands.demo import DEMO_FILE, resolve_demo_data, run_demo
from medlens.data.medmnist_catalog import MEDMNIST_CATALOG, medmnist_url
from medlens.data.medmnist_download import file_md5
from medlens.errors import InputError

MISSING = Path("../shared/data/pneumoniamnist_subset/pneumoniamnist.npz")  # the CLI default


class _CountingHandler(SimpleHTTPRequestHandler):
    """Serves a folder and records each request path (query string included)."""

    def __init__(self, *args, requests: list[str], **kwargs) -> None:
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@dataclasses.dataclass
class Mirror:
    """The stand-in for Zenodo: files under ``folder`` are served at ``base``."""

    folder: Path
    base: str
    requests: list[str]


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone as the working directory, with no ``../shared`` beside it."""
    repo = tmp_path / "clone"
    repo.mkdir()
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MEDLENS_DATA_DIR", raising=False)
    assert not MISSING.exists()
    return repo


@pytest.fixture
def mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pneumonia_npz: Path
) -> Iterator[Mirror]:
    """A local HTTP server on 127.0.0.1 serving the real subset as ``files/pneumoniamnist.npz``."""
    folder = tmp_path / "served"
    (folder / "files").mkdir(parents=True)
    shutil.copy(pneumonia_npz, folder / "files" / DEMO_FILE)
    requests: list[str] = []
    handler = functools.partial(_CountingHandler, requests=requests, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/files"
    monkeypatch.setenv("MEDLENS_MEDMNIST_BASE_URL", base)
    try:
        yield Mirror(folder / "files", base, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def subset_is_official(monkeypatch: pytest.MonkeyPatch, pneumonia_npz: Path) -> str:
    """Patch the subset's MD5 into the catalogue as the official 28 px one; returns it."""
    info = MEDMNIST_CATALOG["pneumoniamnist"]
    md5 = file_md5(pneumonia_npz)
    assert md5 != info.md5[28]  # the subset is not the official file: the patch matters
    monkeypatch.setitem(
        MEDMNIST_CATALOG, "pneumoniamnist", dataclasses.replace(info, md5={**info.md5, 28: md5})
    )
    return md5


@pytest.fixture
def closed_port_base(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the base URL at a port nothing listens on (connection refused: offline)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/files"
    monkeypatch.setenv("MEDLENS_MEDMNIST_BASE_URL", base)
    return base


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_missing_file_is_downloaded_once_into_the_cache(
    clone: Path, mirror: Mirror, subset_is_official: str, tmp_path: Path
) -> None:
    path = resolve_demo_data(MISSING)
    cache = clone / "data" / "medmnist"
    assert path == cache / DEMO_FILE
    assert file_md5(path) == subset_is_official
    assert path.read_bytes() == (mirror.folder / DEMO_FILE).read_bytes()
    assert mirror.requests == [f"/files/{DEMO_FILE}?download=1"]
    assert _files(cache) == [DEMO_FILE]  # no *.part left
    assert not (tmp_path / "shared").exists()  # nothing created beside the missing path

    assert resolve_demo_data(MISSING) == path  # second time: the cache, not the server
    assert len(mirror.requests) == 1


def test_data_dir_env_chooses_the_cache(
    clone: Path, mirror: Mirror, subset_is_official: str, tmp_path: Path, monkeypatch
) -> None:
    cache = tmp_path / "elsewhere"
    monkeypatch.setenv("MEDLENS_DATA_DIR", str(cache))
    assert resolve_demo_data(MISSING) == cache / DEMO_FILE
    assert _files(cache) == [DEMO_FILE]
    assert not (clone / "data").exists()
    assert len(mirror.requests) == 1


def test_an_existing_file_or_folder_is_used_without_network(
    clone: Path, mirror: Mirror, pneumonia_npz: Path
) -> None:
    assert resolve_demo_data(pneumonia_npz) == pneumonia_npz
    assert resolve_demo_data(pneumonia_npz.parent) == pneumonia_npz
    assert mirror.requests == []
    assert not (clone / "data").exists()


def test_cached_file_is_md5_checked_before_use(
    clone: Path, mirror: Mirror, subset_is_official: str
) -> None:
    cache = clone / "data" / "medmnist"
    cache.mkdir(parents=True)
    (cache / DEMO_FILE).write_bytes(b"not the official file")
    with pytest.raises(InputError, match="MD5") as info:
        resolve_demo_data(MISSING)
    assert info.value.path == str(MISSING)
    assert mirror.requests == []


def test_offline_error_names_the_file_and_the_folder(
    clone: Path, closed_port_base: str, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as info:
        resolve_demo_data(MISSING)
    message = str(info.value)
    cache = (clone / "data" / "medmnist").resolve()
    assert message.startswith(f"{MISSING}: PneumoniaMNIST not found")
    assert "\n" not in message
    assert f"file {DEMO_FILE} ({medmnist_url('pneumoniamnist')}) in {cache}," in message
    assert closed_port_base in message
    assert "refused" in message.lower()  # the reason the download failed
    assert f"`medlens download pneumoniamnist --root {cache}`" in message
    assert "--data PATH" in message
    assert _files(clone) == []
    assert not (tmp_path / "shared").exists()


def test_wrong_md5_from_the_server_is_refused_and_leaves_nothing(
    clone: Path, mirror: Mirror
) -> None:
    # the catalogue keeps the official MD5; the server sends the (different) subset
    with pytest.raises(InputError, match="does not match the official") as info:
        resolve_demo_data(MISSING)
    assert info.value.path == str(MISSING)
    assert mirror.requests == [f"/files/{DEMO_FILE}?download=1"]
    assert _files(clone) == []  # neither pneumoniamnist.npz.part nor pneumoniamnist.npz


def test_a_missing_file_of_another_name_is_not_replaced_by_a_download(
    clone: Path, mirror: Mirror
) -> None:
    with pytest.raises(InputError, match="file not found; pass --data PATH") as info:
        resolve_demo_data(Path("my_scans.npz"))
    assert info.value.path == "my_scans.npz"
    assert mirror.requests == []


def test_run_demo_trains_on_the_resolved_file(
    clone: Path, mirror: Mirror, subset_is_official: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def fake_train(config, overwrite: bool = False) -> Path:  # training is tested elsewhere
        seen.append(config.data.path)
        return Path(config.output_dir) / config.name

    monkeypatch.setattr("medlens.commands.train.train_and_report", fake_train)
    run_demo(MISSING, output_dir=clone / "runs")
    assert [Path(p) for p in seen] == [clone / "data" / "medmnist" / DEMO_FILE]
