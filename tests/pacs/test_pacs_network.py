"""The PACS client against a flaky, hostile or TLS-only server (no Orthanc needed).

Each test starts a small HTTP(S) server on loopback that answers as the test scripts it:
dropped connections, timeouts and HTTP 502/503/504 before a good answer; identifiers that
try to walk the URL path; a series of tens of megabytes sent in chunks; a certificate from
a private CA.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medlens.errors import ConfigError, InputError
from medlens.pacs.client import OrthancClient, PacsError, SeriesInfo
from medlens.pacs.commands import process_study
from medlens.pacs.local_orthanc import free_loopback_port

# -- a scriptable server ----------------------------------------------------------------------


class Request(BaseHTTPRequestHandler):
    """One request; ``server.answer(request, n)`` (n = 1, 2, ... over the server's life)
    writes the answer with the helpers below."""

    protocol_version = "HTTP/1.1"
    server: FakeServer

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length", 0) or 0)
        self.body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append((self.command, self.path))
            n = len(self.server.requests)
        self.server.answer(self, n)

    do_GET = do_POST = _any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def json(self, value: Any, status: int = 200) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[Request, int], None], tls: ssl.SSLContext | None):
        super().__init__(("127.0.0.1", 0), Request)
        self.answer = answer
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout, untrusted certificate) is part of the script

    @property
    def paths(self) -> list[str]:
        return [path for _, path in self.requests]


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    """``serve(answer, tls=None)``: a started ``FakeServer``, stopped after the test."""
    servers: list[FakeServer] = []

    def start(answer: Callable[[Request, int], None], tls: ssl.SSLContext | None = None):
        server = FakeServer(answer, tls)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fast(attempts: int = 4):
    from medlens.pacs.client import RetryPolicy

    return RetryPolicy(attempts=attempts, first_wait_s=0.01, max_wait_s=0.05)


# -- retries ----------------------------------------------------------------------------------


def test_a_dropped_connection_and_a_503_are_retried(serve: Callable[..., FakeServer]) -> None:
    def answer(request: Request, n: int) -> None:
        if n == 1:
            request.drop()
        elif n == 2:
            request.json({"Message": "busy"}, status=503)
        else:
            request.json({"Name": "fake"})

    server = serve(answer)
    with OrthancClient(server.url, retry=fast()) as client:
        assert client.system() == {"Name": "fake"}
    assert server.paths == ["/system"] * 3


def test_a_timeout_is_retried(serve: Callable[..., FakeServer]) -> None:
    def answer(request: Request, n: int) -> None:
        if n == 1:
            time.sleep(1.0)
        request.json({"Name": "slow at first"})

    server = serve(answer)
    with OrthancClient(server.url, timeout_s=0.2, retry=fast()) as client:
        assert client.system() == {"Name": "slow at first"}
    assert len(server.paths) == 2


def test_retries_are_bounded_and_only_for_transient_errors(
    serve: Callable[..., FakeServer],
) -> None:
    gateway = serve(lambda request, n: request.json({"Message": "bad gateway"}, status=502))
    with (
        OrthancClient(gateway.url, retry=fast(attempts=3)) as client,
        pytest.raises(PacsError, match="HTTP 502: bad gateway after 3 attempts") as info,
    ):
        client.system()
    assert len(gateway.paths) == 3 and "\n" not in str(info.value)

    broken = serve(lambda request, n: request.json({"Message": "bug"}, status=500))
    with (
        OrthancClient(broken.url, retry=fast()) as client,
        pytest.raises(PacsError, match="HTTP 500: bug$"),
    ):
        client.system()
    assert len(broken.paths) == 1  # a server error is an answer, not a hiccup

    down = f"http://127.0.0.1:{free_loopback_port()}"
    with (
        OrthancClient(down, retry=fast(attempts=2)) as client,
        pytest.raises(PacsError, match="does not answer .*after 2 attempts; is it running"),
    ):
        client.system()


def test_a_download_cut_off_mid_body_starts_over(
    serve: Callable[..., FakeServer], tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 40

    def answer(request: Request, n: int) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/dicom")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if n == 1:
            request.wfile.write(payload[:100])
            request.close_connection = True
        else:
            request.wfile.write(payload)

    server = serve(answer)
    series = SeriesInfo("s", "1.2.3", "OT", "", "", instance_ids=["i-1"])
    with OrthancClient(server.url, dicomweb="off", retry=fast()) as client:
        files = client.download_series("1.2", series, tmp_path / "series")
    assert [f.name for f in files] == ["00000.dcm"] and files[0].read_bytes() == payload
    assert server.paths == ["/instances/i-1/file"] * 2


# -- identifiers are data ---------------------------------------------------------------------


def test_identifiers_from_the_server_are_quoted_into_one_path_segment(
    serve: Callable[..., FakeServer], pneumonia_run: Path
) -> None:
    """A study ID that tries to walk up the path, and an instance ID that tries to reach
    another resource: each stays one segment of the path it was meant for."""

    def walking_study(request: Request, n: int) -> None:
        if request.path == "/tools/lookup":
            request.json([{"Type": "Study", "ID": "../../changes"}])
        else:
            request.json({"Message": "no such resource"}, status=404)

    server = serve(walking_study)
    with pytest.raises(PacsError, match="HTTP 404"):
        process_study(server.url, "1.2.3", pneumonia_run, dicomweb="off")
    assert server.paths == ["/tools/lookup", "/studies/..%2F..%2Fchanges/series"]

    def walking_instance(request: Request, n: int) -> None:
        if request.path == "/tools/lookup":
            request.json([{"Type": "Study", "ID": "study-1"}])
        elif request.path == "/studies/study-1/series":
            tags = {"SeriesInstanceUID": "1.2.3.4", "Modality": "OT"}
            instances = ["../../../tools/reset"]
            request.json([{"ID": "series-1", "MainDicomTags": tags, "Instances": instances}])
        elif request.path == "/studies/study-1/instances":
            request.json([])
        else:
            request.json({"Message": "no such resource"}, status=404)

    server = serve(walking_instance)
    with pytest.raises(PacsError, match="HTTP 404"):
        process_study(server.url, "1.2.3", pneumonia_run, dicomweb="off")
    assert server.paths[-1] == "/instances/..%2F..%2F..%2Ftools%2Freset/file"
    assert not any(path.startswith("/tools/reset") for path in server.paths)

    with (
        OrthancClient(server.url) as client,
        pytest.raises(PacsError, match="refusing '..' as an identifier in a URL path"),
    ):
        client.study_series("..")


def test_a_series_uid_that_is_no_uid_is_refused_before_any_url_holds_it(
    serve: Callable[..., FakeServer], pneumonia_run: Path
) -> None:
    def hostile(request: Request, n: int) -> None:
        if request.path == "/plugins":
            request.json(["dicom-web"])
        elif request.path == "/tools/lookup":
            request.json([{"Type": "Study", "ID": "study-1"}])
        elif request.path == "/studies/study-1/series":
            tags = {"SeriesInstanceUID": "1.2/../../../../system", "Modality": "OT"}
            request.json([{"ID": "series-1", "MainDicomTags": tags, "Instances": ["i"]}])
        else:
            request.json({"Message": "no such resource"}, status=404)

    server = serve(hostile)
    with pytest.raises(InputError, match="SeriesInstanceUID '1.2/../../../../system' is not a"):
        process_study(server.url, "1.2.3", pneumonia_run, dicomweb="on")
    assert server.paths == ["/plugins", "/tools/lookup", "/studies/study-1/series"]


@pytest.mark.parametrize(
    "value",
    ["0", "1.2.840.10008.5.1.4.1.1.7", "2.25.0", "1.0.3", "1." + "2" * 62],
)
def test_dicom_uids_pass_the_grammar(value: str) -> None:
    from medlens.pacs.uids import check_uid, is_uid

    assert is_uid(value) and check_uid(value, "SOPInstanceUID", "here") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01.2",
        "1.02",
        "1..2",
        "1.2.",
        ".1.2",
        "1.2/../../x",
        "1.2.a",
        "1.2 ",
        "1.2\n3",
        "-1.2",
        "1." + "2" * 63,
        None,
        1.2,
    ],
)
def test_anything_else_is_refused_with_one_line(value: object) -> None:
    from medlens.pacs.uids import InvalidUidError, check_uid, is_uid

    assert not is_uid(value)
    with pytest.raises(InvalidUidError, match="SOPInstanceUID .* is not a DICOM UID") as info:
        check_uid(value, "SOPInstanceUID", "file.dcm")
    assert isinstance(info.value, InputError) and "\n" not in str(info.value)


def test_derived_uids_are_deterministic_uuid_uids() -> None:
    from medlens.pacs.uids import derived_uid, is_uid, result_instance_uid, result_series_uid

    weights = hashlib.sha256(b"weights").hexdigest()
    uid = result_instance_uid(weights, "report", "1.2.3", "1.2.3.4")
    assert uid == result_instance_uid(weights, "report", "1.2.3", "1.2.3.4")
    assert uid.startswith("2.25.") and is_uid(uid) and len(uid) <= 44
    others = {
        result_instance_uid(weights, "overlay", "1.2.3", "1.2.3.4"),
        result_instance_uid(weights, "report", "1.2.3", "1.2.3.5"),
        result_instance_uid(hashlib.sha256(b"other").hexdigest(), "report", "1.2.3", "1.2.3.4"),
        result_series_uid(weights, "report", "1.2.3"),
    }
    assert uid not in others and len(others) == 4
    assert derived_uid("a", "bc") != derived_uid("ab", "c")  # parts do not run together


# -- downloads stream to disk -----------------------------------------------------------------

PART_BYTES = 8 * 1024 * 1024
PARTS = 3
MAX_PEAK_BYTES = 4 * 1024 * 1024  # a third of one part; the series is 24 MiB


def _part_block(k: int) -> bytes:
    return hashlib.sha256(str(k).encode()).digest() * 2048  # 64 KiB


def _part_digest(k: int) -> str:
    digest = hashlib.sha256()
    for _ in range(PART_BYTES // len(_part_block(k))):
        digest.update(_part_block(k))
    return digest.hexdigest()


def _write_part(request: Request, k: int) -> None:
    block = _part_block(k)
    for _ in range(PART_BYTES // len(block)):
        request.wfile.write(block)


def _big_series(request: Request, n: int) -> None:
    if request.path == "/plugins":
        request.json(["dicom-web"])
        return
    boundary = "0a1b2c3d-part-boundary"
    if request.path.startswith("/dicom-web/"):
        head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        tail = f"--{boundary}--\r\n".encode()
        length = PARTS * (len(head) + PART_BYTES + 2) + len(tail)
        request.send_response(200)
        request.send_header(
            "Content-Type",
            f'multipart/related; type="application/dicom"; boundary="{boundary}"',
        )
        request.send_header("Content-Length", str(length))
        request.end_headers()
        for k in range(PARTS):
            request.wfile.write(head)
            _write_part(request, k)
            request.wfile.write(b"\r\n")
        request.wfile.write(tail)
    else:  # /instances/i-<k>/file
        k = int(request.path.split("/")[2].removeprefix("i-"))
        request.send_response(200)
        request.send_header("Content-Type", "application/dicom")
        request.send_header("Content-Length", str(PART_BYTES))
        request.end_headers()
        _write_part(request, k)


@pytest.mark.parametrize("dicomweb", ["on", "off"])
def test_a_series_is_streamed_to_disk_not_held_in_memory(
    serve: Callable[..., FakeServer], tmp_path: Path, dicomweb: str
) -> None:
    server = serve(_big_series)
    series = SeriesInfo("s", "1.2.3", "CT", "", "", [f"i-{k}" for k in range(PARTS)])
    with OrthancClient(server.url, dicomweb=dicomweb) as client:
        assert client.uses_dicomweb == (dicomweb == "on")
        tracemalloc.start()
        try:
            files = client.download_series("1.2", series, tmp_path / "series")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert [f.name for f in files] == [f"{k:05d}.dcm" for k in range(PARTS)]
    for k, file in enumerate(files):
        assert file.stat().st_size == PART_BYTES
        assert hashlib.sha256(file.read_bytes()).hexdigest() == _part_digest(k)
    assert peak < MAX_PEAK_BYTES, f"{peak / 2**20:.1f} MiB held for a 24 MiB series"


def test_the_multipart_splitter_takes_any_chunking() -> None:
    from medlens.pacs.multipart import (
        decode_multipart_related,
        encode_multipart_related,
        split_multipart,
    )

    parts = [b"", b"\r\n--medlens-x\r\n", bytes(range(256)) * 9, b"--"]
    body, content_type = encode_multipart_related(parts)
    assert decode_multipart_related(b"preamble\r\n" + body + b"epilogue", content_type) == parts
    values: list[bytes] = []

    class Sink(io.BytesIO):
        def close(self) -> None:
            values.append(self.getvalue())
            super().close()

    for size in (1, 2, 7, 64, len(body)):
        values.clear()
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert split_multipart(chunks, content_type, lambda _: Sink()) == len(parts)
        assert values == parts
    with pytest.raises(ValueError, match="cut short"):
        decode_multipart_related(body[: len(body) // 2], content_type)


# -- HTTPS with a private CA ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "ca.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def _empty_orthanc(request: Request, n: int) -> None:
    if request.path == "/tools/lookup":
        request.json([])
    elif request.path.startswith("/changes"):
        request.json({"Changes": [], "Done": True, "Last": 0})
    else:
        request.json({"Name": "tls"})


def test_https_with_a_private_ca_needs_the_ca_bundle(
    serve: Callable[..., FakeServer], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    server = serve(_empty_orthanc, tls=_tls(certificate))
    with (
        OrthancClient(server.url, retry=fast()) as client,
        pytest.raises(PacsError, match="certificate is not trusted.*--ca-bundle") as info,
    ):
        client.system()
    assert "\n" not in str(info.value)
    with OrthancClient(server.url, ca_bundle=certificate[0], retry=fast()) as client:
        assert client.system() == {"Name": "tls"}
    with pytest.raises(ConfigError, match="--ca-bundle: .* is not a file"):
        OrthancClient(server.url, ca_bundle=tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="--ca-bundle: .* holds no usable PEM certificate"):
        OrthancClient(server.url, ca_bundle=tmp_path / "junk.pem")


def test_the_cli_takes_ca_bundle_for_process_and_watch(
    serve: Callable[..., FakeServer],
    certificate: tuple[Path, Path],
    pneumonia_run: Path,
    tmp_path: Path,
) -> None:
    from medlens.cli import app

    server = serve(_empty_orthanc, tls=_tls(certificate))
    process = ["pacs", "process", str(pneumonia_run), "--orthanc", server.url]
    process += ["--study", "1.2.3", "--dicomweb", "off", "--user", "u", "--password", "p"]
    untrusted = CliRunner().invoke(app, process)
    assert untrusted.exit_code == 2, untrusted.output
    assert "certificate is not trusted" in untrusted.output and "--ca-bundle" in untrusted.output
    trusted = CliRunner().invoke(app, [*process, "--ca-bundle", str(certificate[0])])
    assert trusted.exit_code == 2, trusted.output
    assert "study 1.2.3: not found in Orthanc" in trusted.output  # it got through TLS

    state = tmp_path / "state.json"
    watch = ["pacs", "watch", str(pneumonia_run), "--orthanc", server.url, "--once"]
    watch += ["--state", str(state), "--user", "u", "--password", "p"]
    untrusted = CliRunner().invoke(app, watch)
    assert untrusted.exit_code == 2 and "certificate is not trusted" in untrusted.output
    trusted = CliRunner().invoke(app, [*watch, "--ca-bundle", str(certificate[0])])
    assert trusted.exit_code == 0, trusted.output
    assert json.loads(state.read_text())["orthanc_url"] == server.url
