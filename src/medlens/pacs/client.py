"""A small Orthanc client: find a study, download its series, store new instances, read changes.

Lookups and the change log use Orthanc's REST API. Images travel through DICOMweb (WADO-RS
to download a series, STOW-RS to store) when the DICOMweb plugin is present, or through the
REST API (``GET /instances/{id}/file``, ``POST /instances``) otherwise; ``dicomweb`` picks:
``"auto"`` (the plugin when Orthanc lists it), ``"on"`` (required) or ``"off"``.

Every failure is a ``MedlensError`` with one line: Orthanc unreachable, credentials
rejected, an HTTP error with Orthanc's own explanation, or a study that is not there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from medlens.errors import ConfigError, InputError, MedlensError
from medlens.io_utils import write_atomic
from medlens.pacs.multipart import (
    DICOM_MEDIA_TYPE,
    decode_multipart_related,
    encode_multipart_related,
)

DICOMWEB_MODES = ("auto", "on", "off")
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"


class PacsError(MedlensError):
    """Orthanc cannot be reached, refuses the request, or answers with an error."""


@dataclass
class SeriesInfo:
    """One series of a study as Orthanc lists it.

    Attributes:
        orthanc_id: Orthanc's identifier of the series.
        series_instance_uid: the DICOM SeriesInstanceUID.
        modality: ``CT``, ``MR``, ``OT``, ``SEG``, ``SR``, ... ("" when absent).
        manufacturer: the series' Manufacturer ("" when absent).
        description: the SeriesDescription ("" when absent).
        instance_ids: Orthanc identifiers of its instances.
    """

    orthanc_id: str
    series_instance_uid: str
    modality: str
    manufacturer: str
    description: str
    instance_ids: list[str] = field(default_factory=list)


class OrthancClient:
    """An HTTP session with one Orthanc server.

    Args:
        url: Orthanc's base URL, e.g. ``http://127.0.0.1:8042``.
        auth: ``(user, password)`` for HTTP Basic authentication, or None.
        dicomweb: ``"auto"``, ``"on"`` or ``"off"`` (see the module docstring).
        timeout_s: seconds to wait for each HTTP answer.

    Raises:
        ConfigError: an unknown ``dicomweb`` mode.
    """

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None = None,
        dicomweb: str = "auto",
        timeout_s: float = 60.0,
    ) -> None:
        if dicomweb not in DICOMWEB_MODES:
            raise ConfigError("--dicomweb", f"must be one of {', '.join(DICOMWEB_MODES)}")
        self.url = url.rstrip("/")
        self.dicomweb = dicomweb
        self._http = httpx.Client(base_url=self.url, auth=auth, timeout=timeout_s)
        self._uses_dicomweb: bool | None = None

    # -- HTTP -----------------------------------------------------------------------------

    def request(
        self, method: str, path: str, missing_ok: bool = False, **kwargs: Any
    ) -> httpx.Response | None:
        """One HTTP request; any failure becomes a one-line ``PacsError``.

        Args:
            missing_ok: answer None for HTTP 404 instead of raising.
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PacsError(
                f"{self.url}: Orthanc does not answer ({type(exc).__name__}: {exc}); is it running?"
            ) from None
        if response.status_code == 401:
            raise PacsError(f"{self.url}: Orthanc rejected the user name or password (HTTP 401)")
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise PacsError(
                f"{self.url}: {method} {path} failed with HTTP {response.status_code}"
                f"{_orthanc_detail(response)}"
            )
        return response

    def get_json(self, path: str, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The JSON answer to ``GET path`` (None for HTTP 404 with ``missing_ok``)."""
        response = self.request("GET", path, missing_ok=missing_ok, **kwargs)
        return None if response is None else response.json()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``request`` for a resource that must exist (HTTP 404 raises ``PacsError``)."""
        response = self.request(method, path, **kwargs)
        assert response is not None
        return response

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
            InputError: no such study on the server.
        """
        matches = self.send("POST", "/tools/lookup", content=study_instance_uid).json()
        for match in matches:
            if match.get("Type") == "Study":
                return str(match["ID"])
        raise InputError(f"study {study_instance_uid}", f"not found in Orthanc at {self.url}")

    def study_instance_uid(self, study_id: str) -> str:
        """The StudyInstanceUID of the study Orthanc calls ``study_id``."""
        return str(self.get_json(f"/studies/{study_id}")["MainDicomTags"]["StudyInstanceUID"])

    def study_series(self, study_id: str) -> list[SeriesInfo]:
        """Every series of a study, in Orthanc's order."""
        out = []
        for series in self.get_json(f"/studies/{study_id}/series"):
            tags = series.get("MainDicomTags", {})
            out.append(
                SeriesInfo(
                    orthanc_id=str(series["ID"]),
                    series_instance_uid=str(tags.get("SeriesInstanceUID", "")),
                    modality=str(tags.get("Modality", "")),
                    manufacturer=str(tags.get("Manufacturer", "")),
                    description=str(tags.get("SeriesDescription", "")),
                    instance_ids=[str(i) for i in series.get("Instances", [])],
                )
            )
        return out

    def changes(self, since: int, limit: int = 100) -> dict[str, Any]:
        """``GET /changes``: ``{"Changes": [...], "Done": bool, "Last": int}`` after ``since``."""
        return self.get_json("/changes", params={"since": since, "limit": limit})

    # -- images ---------------------------------------------------------------------------

    def download_series(
        self, study_instance_uid: str, series: SeriesInfo, folder: Path
    ) -> list[Path]:
        """Write every instance of ``series`` into ``folder`` (``00000.dcm``, ``00001.dcm``, ...
        in download order) and return the files.

        Raises:
            PacsError: the download failed or returned no instances.
        """
        folder.mkdir(parents=True, exist_ok=True)
        if self.uses_dicomweb:
            path = f"/dicom-web/studies/{study_instance_uid}/series/{series.series_instance_uid}"
            response = self.send(
                "GET", path, headers={"Accept": f'multipart/related; type="{DICOM_MEDIA_TYPE}"'}
            )
            try:
                files = decode_multipart_related(
                    response.content, response.headers.get("content-type", "")
                )
            except ValueError as exc:
                raise PacsError(f"{self.url}{path}: unreadable WADO-RS answer ({exc})") from None
        else:
            files = [
                self.send("GET", f"/instances/{instance}/file").content
                for instance in series.instance_ids
            ]
        if not files:
            raise PacsError(f"{self.url}: series {series.series_instance_uid} has no instances")
        return [write_atomic(folder / f"{k:05d}.dcm", data) for k, data in enumerate(files)]

    def store(self, files: list[bytes]) -> None:
        """Store DICOM Part 10 files, through STOW-RS or ``POST /instances``.

        Raises:
            PacsError: Orthanc refused any of them.
        """
        if not files:
            return
        if not self.uses_dicomweb:
            for data in files:
                answer = self.send(
                    "POST", "/instances", content=data, headers={"Content-Type": DICOM_MEDIA_TYPE}
                ).json()
                if answer.get("Status") not in ("Success", "AlreadyStored"):
                    raise PacsError(f"{self.url}: Orthanc did not store an instance ({answer})")
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


def _orthanc_detail(response: httpx.Response) -> str:
    """Orthanc's own explanation of an error (``HttpDescribeErrors``), when it gave one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        detail = body.get("Details") or body.get("Message")
        if detail:
            return f": {detail}"
    return ""
