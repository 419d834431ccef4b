"""A private Orthanc PACS on loopback ports, for tests, demos and local round trips.

The server runs Debian's ``Orthanc`` binary (``apt-get install orthanc orthanc-dicomweb``)
with a configuration generated into a temporary folder that also holds its database and
storage, so nothing outside that folder is read or written and it all goes when the server
stops. Choices, and why:

- ``RemoteAccessAllowed: false``: the REST API answers only on 127.0.0.1.
- ``AuthenticationEnabled: true`` with a user and password generated per start (see
  ``LocalOrthanc.auth``): other users of the machine cannot read the images either.
- The DICOM (C-STORE) port is a free port, but unknown modalities may do nothing but
  C-ECHO: Orthanc binds it on every interface and it cannot be limited to loopback.
- The DICOMweb plugin is loaded when its ``.so`` is installed (``/dicom-web/``).
- ``StableAge`` (seconds without a new instance before a study is "stable" and appears
  as a ``StableStudy`` change) is a parameter: 2 s suits tests, Orthanc's default is 60 s.

Example:
    >>> with LocalOrthanc(stable_age_s=2) as pacs:  # doctest: +SKIP
    ...     client = OrthancClient(pacs.url, auth=pacs.auth)
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from medlens.errors import MedlensError

ORTHANC_BINARY = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
STARTUP_TIMEOUT_S = 30.0


class OrthancStartError(MedlensError):
    """Orthanc is not installed, or did not answer ``/system`` in time."""


def free_loopback_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalOrthanc:
    """One Orthanc process with its own configuration, database and storage folder.

    Args:
        stable_age_s: seconds without new instances before a study counts as stable.
        dicomweb: load the DICOMweb plugin (``None``: when its ``.so`` is installed).
        binary: the Orthanc executable.
        workdir: where config, database and log go; default a new temporary folder that
            ``stop`` removes.

    Attributes:
        url: ``http://127.0.0.1:<port>`` once started.
        auth: ``(user, password)`` the REST API requires.
        dicom_port: the DICOM port.
        has_dicomweb: whether the plugin was loaded.
    """

    def __init__(
        self,
        stable_age_s: int = 2,
        dicomweb: bool | None = None,
        binary: str = ORTHANC_BINARY,
        workdir: str | Path | None = None,
    ) -> None:
        self.stable_age_s = stable_age_s
        self.binary = binary
        self.has_dicomweb = DICOMWEB_PLUGIN.is_file() if dicomweb is None else dicomweb
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.auth = ("medlens", secrets.token_urlsafe(16))
        self.http_port = 0
        self.dicom_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict:
        """The JSON configuration the server is started with."""
        assert self.workdir is not None
        config: dict = {
            "Name": "medlens-local",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "MEDLENS",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.auth[0]: self.auth[1]},
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowMove": False,
            "DicomModalities": {},
            "StableAge": int(self.stable_age_s),
            "SaveJobs": False,
            "HttpDescribeErrors": True,
            "Plugins": [],
        }
        if self.has_dicomweb:
            config["Plugins"] = [str(DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        return config

    def start(self) -> LocalOrthanc:
        """Write the configuration, start Orthanc and wait until ``/system`` answers.

        Raises:
            OrthancStartError: the binary is missing, or the server exited or did not
                answer within 30 s (the last lines of its log are in the message).
        """
        if shutil.which(self.binary) is None:
            raise OrthancStartError(
                f"{self.binary}: Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
            )
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="medlens-orthanc-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_loopback_port()
        self.dicom_port = free_loopback_port()
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        config_path.chmod(0o600)  # it holds the password
        log = open(self.workdir / "orthanc.log", "wb")  # noqa: SIM115 - the child keeps it
        with log:
            self._process = subprocess.Popen(
                [self.binary, str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise OrthancStartError(f"Orthanc exited at start: {self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/system", auth=self.auth, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise OrthancStartError(f"Orthanc did not answer within {STARTUP_TIMEOUT_S:.0f} s")

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log, joined by `` | ``."""
        if self.workdir is None or not (self.workdir / "orthanc.log").is_file():
            return ""
        text = (self.workdir / "orthanc.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        """Stop the server and remove a temporary workdir.

        A server on a temporary workdir is killed at once: its database is deleted next,
        and Orthanc's orderly shutdown takes seconds. One on a given workdir gets SIGTERM
        (SIGKILL after 10 s) so its database stays consistent.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            if self._own_workdir:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> LocalOrthanc:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
