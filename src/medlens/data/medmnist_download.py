"""Download an official MedMNIST file from Zenodo and check its MD5."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from medlens.data.medmnist_catalog import MEDMNIST_CATALOG, medmnist_filename, medmnist_url
from medlens.errors import InputError, UnknownNameError


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def official_md5(flag: str, size: int = 28) -> str:
    """The MD5 MedMNIST publishes for ``flag`` at ``size`` px.

    Raises:
        UnknownNameError: an unknown dataset flag or a size it does not come in.
    """
    if flag not in MEDMNIST_CATALOG:
        raise UnknownNameError("MedMNIST dataset", flag, list(MEDMNIST_CATALOG))
    sizes = MEDMNIST_CATALOG[flag].md5
    if size not in sizes:
        raise UnknownNameError(f"{flag} size", str(size), [str(s) for s in sizes])
    return sizes[size]


def download_medmnist(
    flag: str,
    size: int = 28,
    root: str | Path = "data",
    verify: bool = True,
    timeout_s: float = 60.0,
) -> Path:
    """Return ``root/{flag}[_{size}].npz``, downloading it from Zenodo when it is not there.

    The URL is :func:`~medlens.data.medmnist_catalog.medmnist_url` (Zenodo, or the base in
    ``$MEDLENS_MEDMNIST_BASE_URL``); the MD5 is always the official one. The file is written
    to ``*.part`` and renamed only once complete (and verified); a failed, cut-off,
    interrupted or unverified download leaves neither ``*.part`` nor ``*.npz`` behind.

    Args:
        flag: MedMNIST dataset name, e.g. ``pneumoniamnist``, ``adrenalmnist3d``.
        size: image side in pixels/voxels: 28, 64, 128 or 224 (3D sets: 28 or 64).
        root: folder to keep the file in.
        verify: compare the file's MD5 with the official one (existing or downloaded).
        timeout_s: network timeout in seconds.

    Raises:
        UnknownNameError: unknown flag or size.
        InputError: offline or failed download (naming the file to fetch by hand and the
            folder to put it in), or an MD5 that does not match the official one.
    """
    expected = official_md5(flag, size)
    root = Path(root)
    target = root / medmnist_filename(flag, size)
    if target.exists():
        if verify:
            _check_md5(target, expected)
        return target
    url = medmnist_url(flag, size)
    partial = target.with_name(target.name + ".part")
    try:
        try:
            root.mkdir(parents=True, exist_ok=True)
            with (
                urllib.request.urlopen(url, timeout=timeout_s) as response,
                open(partial, "wb") as out,
            ):
                shutil.copyfileobj(response, out, length=1 << 20)
                # http.client hands a cut-off body over as a short read, without an error
                headers = getattr(response, "headers", None)
                announced = headers.get("Content-Length", "") if headers is not None else ""
                if announced.isdigit() and out.tell() != int(announced):
                    raise ConnectionError(
                        f"connection closed after {out.tell()} of {announced} bytes"
                    )
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            # URLError/HTTPError: unreachable host, HTTP status; HTTPException: a broken
            # response (IncompleteRead of a chunked body, ...); OSError: resets, timeouts, a
            # short body, disk; ValueError: a malformed URL (e.g. a base without http://).
            reason = getattr(exc, "reason", exc)
            raise InputError(
                target,
                f"could not download {url} ({reason}); download {target.name} by hand and put "
                f"it in {root.resolve()}",
            ) from exc  # the cause (offline, HTTP status, ...) stays inspectable
        if verify:
            _check_md5(partial, expected)
        os.replace(partial, target)
    finally:  # any failure, Ctrl-C included: no half-written or unverified file stays
        partial.unlink(missing_ok=True)
    return target


def _check_md5(path: Path, expected: str) -> None:
    actual = file_md5(path)
    if actual != expected:
        raise InputError(
            path,
            f"MD5 {actual} does not match the official {expected}: the file is not the official "
            "MedMNIST release (delete it and download again, or pass verify=False to use it "
            "anyway)",
        )
