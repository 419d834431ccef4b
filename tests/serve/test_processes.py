"""``medlens serve --processes N``: N service processes behind one socket, ``/metrics`` summed
over them, a clean stop on SIGTERM, and a failed start that ends every process with one error
line instead of restarting them forever."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from medlens.errors import ConfigError
from medlens.serve.app import serve
from medlens.serve.processes import run_processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(run_dir: Path, tmp: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """The service in a child process; its JSON log lines go to ``log`` (a pipe nobody reads
    would fill and stall it)."""
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    env.pop("MEDLENS_TOKENS", None)
    argv = [sys.executable, "-m", "medlens", "serve", str(run_dir), "--port", str(port)]
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [*argv, "--processes", "2"], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def _service_processes(parent: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(parent.pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("medlens-serve"))


def _png(tmp: Path, pneumonia_npz: Path) -> bytes:
    image = np.load(pneumonia_npz)["test_images"][0]
    path = tmp / "case.png"
    Image.fromarray(image).save(path)
    return path.read_bytes()


def test_two_processes_serve_and_metrics_count_every_request(
    pneumonia_run: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "tmp"
    workdir.mkdir()
    body = _png(tmp_path, pneumonia_npz)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    server = _start(pneumonia_run, workdir, port, log)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the service did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert len(_service_processes(server)) == 2

        def predict(_: int) -> int:  # a new connection each: any process may take it
            files = {"file": ("case.png", body, "image/png")}
            return httpx.post(
                f"{url}/v1/predict?heatmap=false", files=files, timeout=60
            ).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(predict, range(16)))
        assert statuses == [200] * 16
        text = httpx.get(f"{url}/metrics", timeout=10).text
        count = re.search(
            r'^medlens_requests_total\{endpoint="/v1/predict",status="200"\} (\S+)$', text, re.M
        )
        assert count is not None, text
        assert float(count.group(1)) == 16.0  # summed over both processes
        assert re.search(r'^medlens_model_load_seconds\{.*model="pneumonia".*\} ', text, re.M)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for child in _service_processes(server):
                child.kill()
            server.kill()
            raise AssertionError(f"no stop on SIGTERM: {log.read_text()[-2000:]}") from None
    assert server.returncode == 0, log.read_text()[-2000:]
    assert _leftovers(workdir) == []  # workspaces and the shared metrics folder removed


def test_a_run_that_cannot_load_stops_every_process_with_one_error(tmp_path: Path) -> None:
    workdir = tmp_path / "tmp"
    workdir.mkdir()
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    log = tmp_path / "serve.log"
    server = _start(not_a_run, workdir, _free_port(), log)
    try:
        server.wait(timeout=240)  # not restarted forever
    except subprocess.TimeoutExpired:
        server.kill()
        raise
    stderr = log.read_text()
    assert server.returncode == 2, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(not_a_run / "config.yaml") in last, stderr[-2000:]
    assert "Traceback" not in stderr
    assert _leftovers(workdir) == []


def test_process_counts_are_checked() -> None:
    with pytest.raises(ConfigError, match="--processes"):
        serve([Path("unused")], processes=0)
    with pytest.raises(ConfigError, match="--processes"):
        run_processes({}, "127.0.0.1", 8000, processes=1)


def test_a_folder_without_a_run_is_one_error_and_leaves_no_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with one process: the missing file is named (it was a FileNotFoundError
    traceback, from hashing the weights before the folder was checked), and the service's
    workspace is removed at once."""
    from medlens.errors import InputError
    from medlens.serve.app import create_app

    workdir = tmp_path / "tmp"
    workdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(workdir))
    monkeypatch.setattr("tempfile.tempdir", None)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(InputError, match="config.yaml"):
        create_app([empty])
    assert _leftovers(workdir) == []
