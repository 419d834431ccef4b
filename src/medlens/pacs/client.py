"""A small Orthanc client: find a study, download its series, store new instances, read changes.

Lookups and the change log use Orthanc's REST API. Images travel through DICOMweb (WADO-RS
to download a series, STOW-RS to store) when the DICOMweb plugin is present, or through the
REST API (``GET /instances/{id}/file``, ``POST /instances``) otherwise; ``dicomweb`` picks:
``"auto"`` (the plugin when Orthanc lists it), ``"on"`` (required) or ``"off"``.

What the server says is data, never a path:

- every identifier put into a URL is one percent-quoted path segment
  (``urllib.parse.quote(segment, safe="")``), and ``.``, ``..`` or an empty segment is
  refused, so an identifier can never walk to another resource;
- every UID read from the server is checked against the DICOM UI grammar
  (``medlens.pacs.uids.check_uid``);
- downloads stream to disk (a series is never held in memory whole).

Transient failures (connection errors, timeouts, HTTP 502/503/504) are retried a few times
with exponential backoff (``RetryPolicy``). Storing is safe to retry: Orthanc keeps one copy
of a SOP instance. HTTPS servers signed by a private CA are trusted through ``ca_bundle``.

Every failure is a ``MedlensError`` with one line: Orthanc unreachable, its certificate not
trusted, credentials rejected, an HTTP error with Orthanc's own explanation, or a study that
is not there.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx

from medlens.errors import ConfigError, InputError, MedlensError
from medlens.pacs.multipart import DICOM_MEDIA_TYPE, MultipartSplitter, encode_multipart_related
from medlens.pacs.uids import check_uid

DICOMWEB_MODES = ("auto", "on", "off")
RETRY_STATUS = frozenset({502, 503, 504})
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_CHUNK_BYTES = 1 << 16

T = TypeVar("T")


class PacsError(MedlensError):
    """Orthanc cannot be reached, refuses the request, or answers with an error."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after which waits, a request that failed transiently is tried again.

    Attributes:
        attempts: tries in all (1: no retry).
        first_wait_s: the wait after the first failure; each further wait doubles it...
        max_wait_s: ...up to this.
    """

    attempts: int = 4
    first_wait_s: float = 0.5
    max_wait_s: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("retries", f"attempts must be at least 1, got {self.attempts}")
        if self.first_wait_s < 0 or self.max_wait_s < 0:
            raise ConfigError("retries", "waits must not be negative")

    def wait_s(self, failures: int) -> float:
        """The wait after the ``failures``-th failed try (1, 2, ...)."""
        return min(self.max_wait_s, self.first_wait_s * 2 ** (failures - 1))


@dataclass
class SeriesInfo:
    """One series of a study as Orthanc lists it.

    Attributes:
        orthanc_id: Orthanc's identifier of the series.
        series_instance_uid: the DICOM SeriesInstanceUID (checked: a UID).
        modality: ``CT``, ``MR``, ``OT``, ``SEG``, ``SR``, ... ("" when absent).
        manufacturer: the series' Manufacturer ("" when absent); informative only.
        description: the SeriesDescription ("" when absent).
        instance_ids: Orthanc identifiers of its instances.
    """

    orthanc_id: str
    series_instance_uid: str
    modality: str
    manufacturer: str
    description: str
    instance_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InstanceInfo:
    """One instance of a study as Orthanc lists it.

    Attributes:
        orthanc_id: Orthanc's identifier of the instance.
        sop_instance_uid: its SOPInstanceUID (checked: a UID).
        series_id: Orthanc's identifier of its series.
    """

    orthanc_id: str
    sop_instance_uid: str
    series_id: str


class _RetryStatus(Exception):
    """An answer whose status (502, 503, 504) says: try again later."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def ssl_verify(ca_bundle: str | Path | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: the system's CAs, or only those in the PEM file ``ca_bundle``.

    Raises:
        ConfigError: the file does not exist or holds no usable certificate.
    """
    if ca_bundle is None:
        return True
    path = Path(ca_bundle)
    if not path.is_file():
        raise ConfigError("--ca-bundle", f"{path} is not a file")
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            "--ca-bundle", f"{path} holds no usable PEM certificate ({type(exc).__name__})"
        ) from None


def url_path(*segments: str) -> str:
    """``/seg1/seg2/...`` with every segment percent-quoted (``/`` included).

    Raises:
        PacsError: an empty segment, ``.`` or ``..`` (which a URL resolves as a path step).
    """
    for segment in segments:
        if segment in ("", ".", ".."):
            raise PacsError(f"refusing {segment!r} as an identifier in a URL path")
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class OrthancClient:
    """An HTTP session with one Orthanc server.

    Args:
        url: Orthanc's base URL, e.g. ``http://127.0.0.1:8042``.
        auth: ``(user, password)`` for HTTP Basic authentication, or None.
        dicomweb: ``"auto"``, ``"on"`` or ``"off"`` (see the module docstring).
        timeout_s: seconds to wait for each HTTP answer.
        retry: how transient failures are retried (default ``RetryPolicy()``: 4 tries,
            waits 0.5, 1 and 2 s).
        ca_bundle: a PEM file of the CAs to trust for HTTPS (default: the system's).
        transport: an httpx transport to use instead of the network (tests).

    Raises:
        ConfigError: an unknown ``dicomweb`` mode, or an unusable ``ca_bundle``.
    """

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None = None,
        dicomweb: str = "auto",
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        ca_bundle: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if dicomweb not in DICOMWEB_MODES:
            raise ConfigError("--dicomweb", f"must be one of {', '.join(DICOMWEB_MODES)}")
        self.url = url.rstrip("/")
        self.dicomweb = dicomweb
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.url,
            auth=auth,
            timeout=timeout_s,
            verify=ssl_verify(ca_bundle),
            transport=transport,
        )
        self._uses_dicomweb: bool | None = None

    # -- HTTP -----------------------------------------------------------------------------

    def _retrying(self, what: str, once: Callable[[], T]) -> T:
        """``once()``, tried again after transient failures; a one-line ``PacsError`` when
        the last try fails (or a failure is not transient)."""
        attempts = self.retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                return once()
            except httpx.TransportError as exc:
                if _certificate_problem(exc):
                    raise PacsError(
                        f"{self.url}: the server's certificate is not trusted ({_first_line(exc)});"
                        " pass its CA with --ca-bundle"
                    ) from None
                if not _transient(exc) or attempt == attempts:
                    raise PacsError(
                        f"{self.url}: Orthanc does not answer ({type(exc).__name__}: "
                        f"{_first_line(exc)}){_tries(attempt)}; is it running?"
                    ) from None
            except _RetryStatus as exc:
                if attempt == attempts:
                    raise PacsError(
                        f"{self.url}: {what} failed with HTTP {exc.response.status_code}"
                        f"{_orthanc_detail(exc.response)}{_tries(attempt)}"
                    ) from None
            time.sleep(self.retry.wait_s(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(
        self, response: httpx.Response, what: str, missing_ok: bool
    ) -> httpx.Response | None:
        """None for a 404 with ``missing_ok``; ``PacsError`` for any other error status."""
        if response.status_code == 401:
            raise PacsError(f"{self.url}: Orthanc rejected the user name or password (HTTP 401)")
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise PacsError(
                f"{self.url}: {what} failed with HTTP {response.status_code}"
                f"{_orthanc_detail(response)}"
            )
        return response

    def request(
        self, method: str, path: str, missing_ok: bool = False, **kwargs: Any
    ) -> httpx.Response | None:
        """One HTTP request (retried when it fails transiently); any failure becomes a
        one-line ``PacsError``.

        Args:
            path: the URL path; build it with ``url_path`` from anything the server said.
            missing_ok: answer None for HTTP 404 instead of raising.
        """

        def once() -> httpx.Response:
            response = self._http.request(method, path, **kwargs)
            if response.status_code in RETRY_STATUS:
                raise _RetryStatus(response)
            return response

        what = f"{method} {path}"
        return self._checked(self._retrying(what, once), what, missing_ok)

    def get_json(self, path: str, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The JSON answer to ``GET path`` (None for HTTP 404 with ``missing_ok``)."""
        response = self.request("GET", path, missing_ok=missing_ok, **kwargs)
        if response is None:
            return None
        try:
            return response.json()
        except ValueError:
            raise PacsError(f"{self.url}: GET {path} did not answer with JSON") from None

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``request`` for a resource that must exist (HTTP 404 raises ``PacsError``)."""
        response = self.request(method, path, **kwargs)
        assert response is not None
        return response

    def download(self, path: str, write: Callable[[httpx.Response], None], **kwargs: Any) -> None:
        """``GET path`` streamed: ``write(response)`` reads the body (``iter_bytes``) while
        it arrives. A transient failure, also in the middle of the body, starts over (so
        ``write`` must start its output afresh each time it is called)."""
        what = f"GET {path}"

        def once() -> None:
            with self._http.stream("GET", path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    if response.status_code in RETRY_STATUS:
                        raise _RetryStatus(response)
                    self._checked(response, what, missing_ok=False)
                write(response)

        self._retrying(what, once)

    def system(self) -> dict[str, Any]:
        """``GET /system``: name, version, ports."""
        return self.get_json("/system")

    @property
    def uses_dicomweb(self) -> bool:
        """Whether images travel through DICOMweb (decided once, on first use).

        Raises:
            PacsError: ``dicomweb="on"`` but the plugin is not loaded.
        """
        if self._uses_dicomweb is None:
            if self.dicomweb == "off":
                self._uses_dicomweb = False
            else:
                present = "dicom-web" in self.get_json("/plugins")
                if self.dicomweb == "on" and not present:
                    raise PacsError(f"{self.url}: the Orthanc DICOMweb plugin is not loaded")
                self._uses_dicomweb = present
        return self._uses_dicomweb

    # -- lookups --------------------------------------------------------------------------

    def find_study(self, study_instance_uid: str) -> str:
        """Orthanc's identifier of the study with this StudyInstanceUID.

        Raises:
            InvalidUidError: ``study_instance_uid`` is no DICOM UID.
            InputError: no such study on the server.
        """
        check_uid(study_instance_uid, "StudyInstanceUID", "--study")
        matches = self.send("POST", "/tools/lookup", content=study_instance_uid).json()
        for match in matches:
            if match.get("Type") == "Study":
                return str(match["ID"])
        raise InputError(f"study {study_instance_uid}", f"not found in Orthanc at {self.url}")

    def study_tags(self, study_id: str) -> dict[str, Any] | None:
        """The MainDicomTags of a study (None when Orthanc no longer holds it); its
        StudyInstanceUID is checked.

        Raises:
            InvalidUidError: the StudyInstanceUID is no DICOM UID.
        """
        study = self.get_json(url_path("studies", study_id), missing_ok=True)
        if study is None:
            return None
        tags = dict(study.get("MainDicomTags", {}))
        check_uid(tags.get("StudyInstanceUID"), "StudyInstanceUID", f"{self.url} study {study_id}")
        return tags

    def study_instance_uid(self, study_id: str) -> str:
        """The StudyInstanceUID of the study Orthanc calls ``study_id``.

        Raises:
            PacsError: no such study.
        """
        tags = self.study_tags(study_id)
        if tags is None:
            raise PacsError(f"{self.url}: study {study_id} is not in Orthanc")
        return str(tags["StudyInstanceUID"])

    def study_series(self, study_id: str) -> list[SeriesInfo]:
        """Every series of a study, in Orthanc's order.

        Raises:
            InvalidUidError: a series whose SeriesInstanceUID is no DICOM UID.
        """
        out = []
        for series in self.get_json(url_path("studies", study_id, "series")):
            tags = series.get("MainDicomTags", {})
            orthanc_id = str(series["ID"])
            out.append(
                SeriesInfo(
                    orthanc_id=orthanc_id,
                    series_instance_uid=check_uid(
                        tags.get("SeriesInstanceUID"),
                        "SeriesInstanceUID",
                        f"{self.url} series {orthanc_id}",
                    ),
                    modality=str(tags.get("Modality", "")),
                    manufacturer=str(tags.get("Manufacturer", "")),
                    description=str(tags.get("SeriesDescription", "")),
                    instance_ids=[str(i) for i in series.get("Instances", [])],
                )
            )
        return out

    def study_instances(self, study_id: str) -> list[InstanceInfo]:
        """Every instance of a study with its SOPInstanceUID.

        Raises:
            InvalidUidError: an instance whose SOPInstanceUID is no DICOM UID.
        """
        return [
            InstanceInfo(
                orthanc_id=str(item["ID"]),
                sop_instance_uid=check_uid(
                    item.get("MainDicomTags", {}).get("SOPInstanceUID"),
                    "SOPInstanceUID",
                    f"{self.url} instance {item['ID']}",
                ),
                series_id=str(item.get("ParentSeries", "")),
            )
            for item in self.get_json(url_path("studies", study_id, "instances"))
        ]

    def changes(self, since: int, limit: int = 100) -> dict[str, Any]:
        """``GET /changes``: ``{"Changes": [...], "Done": bool, "Last": int}`` after ``since``."""
        return self.get_json("/changes", params={"since": since, "limit": limit})

    # -- images ---------------------------------------------------------------------------

    def download_series(
        self, study_instance_uid: str, series: SeriesInfo, folder: Path
    ) -> list[Path]:
        """Stream every instance of ``series`` into ``folder`` (``00000.dcm``, ``00001.dcm``,
        ... in download order) and return the files. Names are indices, never UIDs.

        Raises:
            PacsError: the download failed or returned no instances.
        """
        folder.mkdir(parents=True, exist_ok=True)
        if self.uses_dicomweb:
            path = url_path(
                "dicom-web", "studies", study_instance_uid, "series", series.series_instance_uid
            )
            files = self._download_multipart(path, folder)
        else:
            files = []
            for k, instance in enumerate(series.instance_ids):
                target = folder / f"{k:05d}.dcm"
                self.download(
                    url_path("instances", instance, "file"), partial(_stream_to_file, target=target)
                )
                files.append(target)
        if not files:
            raise PacsError(f"{self.url}: series {series.series_instance_uid} has no instances")
        return files

    def _download_multipart(self, path: str, folder: Path) -> list[Path]:
        """WADO-RS: the multipart answer split into files while it arrives."""
        files: list[Path] = []

        def write(response: httpx.Response) -> None:
            for stale in files:
                stale.unlink(missing_ok=True)
            files.clear()

            def open_part(index: int) -> BinaryIO:
                files.append(folder / f"{index:05d}.dcm")
                return open(files[-1], "wb")  # noqa: SIM115 - the splitter closes it

            try:
                splitter = MultipartSplitter(response.headers.get("content-type", ""), open_part)
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    splitter.feed(chunk)
                splitter.close()
            except ValueError as exc:
                raise PacsError(f"{self.url}{path}: unreadable WADO-RS answer ({exc})") from None

        self.download(
            path, write, headers={"Accept": f'multipart/related; type="{DICOM_MEDIA_TYPE}"'}
        )
        return files

    def store(self, files: list[bytes]) -> None:
        """Store DICOM Part 10 files, through STOW-RS or ``POST /instances``.

        Raises:
            PacsError: Orthanc refused any of them.
        """
        if not files:
            return
        if not self.uses_dicomweb:
            for data in files:
                self.store_instance(data)
            return
        body, content_type = encode_multipart_related(files)
        answer = self.send(
            "POST",
            "/dicom-web/studies",
            content=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        ).json()
        failed = answer.get(_FAILED_SOP_SEQUENCE, {}).get("Value", [])
        stored = answer.get(_REFERENCED_SOP_SEQUENCE, {}).get("Value", [])
        if failed or len(stored) != len(files):
            raise PacsError(
                f"{self.url}: STOW-RS stored {len(stored)} of {len(files)} instances"
                f" ({len(failed)} refused)"
            )

    def store_instance(self, data: bytes) -> None:
        """``POST /instances`` of one DICOM Part 10 file.

        Raises:
            PacsError: Orthanc did not store it.
        """
        answer = self.send(
            "POST", "/instances", content=data, headers={"Content-Type": DICOM_MEDIA_TYPE}
        ).json()
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise PacsError(f"{self.url}: Orthanc did not store an instance ({answer})")

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stream_to_file(response: httpx.Response, target: Path) -> None:
    """The body into ``target``, chunk by chunk (a partial file is removed)."""
    try:
        with open(target, "wb") as handle:
            for chunk in response.iter_bytes(_CHUNK_BYTES):
                handle.write(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise


def _transient(exc: httpx.TransportError) -> bool:
    """Worth another try: the network or the server hiccupped, not our request."""
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _tries(attempt: int) -> str:
    return f" after {attempt} attempts" if attempt > 1 else ""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _orthanc_detail(response: httpx.Response) -> str:
    """Orthanc's own explanation of an error (``HttpDescribeErrors``), when it gave one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        detail = body.get("Details") or body.get("Message")
        if detail:
            return f": {_first_line(Exception(str(detail)))}"
    return ""
