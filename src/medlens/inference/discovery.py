"""The one input walker: which files under the given paths are images to predict, for every
verb and engine (``predict`` with or without ``--engine``, ``explain``, segmentation).

Folders are walked lazily, so an archive of millions of files costs one folder listing at a
time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

from medlens.data.image import Image
from medlens.data.readers import IMAGE_SUFFIXES
from medlens.errors import InputError

# .npz is listed so that an archive met in a folder gets an error row rather than vanishing.
_SUFFIXES = IMAGE_SUFFIXES | {".npz"}
_SERIES_SUFFIXES = frozenset({".dcm", ".dicom", ""})


def _suffix(name: str) -> str:
    """The suffix that decides whether a file is looked at: ``.nii.gz`` counts as ``.nii``,
    and a numeric one (DICOM files named by their UID, ``1.2.840...320``) counts as none."""
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return ".nii"
    suffix = os.path.splitext(lower)[1]
    return "" if suffix[1:].isdigit() else suffix


def is_candidate_image(name: str) -> bool:
    """Whether a file of this name is read (an image suffix, no suffix, or a numeric one)."""
    return not name.startswith(".") and _suffix(name) in _SUFFIXES | {""}


def _folder_id(path: str) -> tuple[int, int]:
    """``(st_dev, st_ino)`` of a folder, through symlinks: the same folder reached by two
    paths has one id."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether the entry is a folder; a symlink that cannot be resolved (a link to itself,
    ``ELOOP``, or a dangling one) counts as a file, so it becomes an error row of its own
    instead of stopping the walk."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _scan(folder: str, volumes: bool, seen: set[tuple[int, int]]) -> Iterator[str]:
    # One folder's names at a time: memory is bounded by the largest folder's listing
    # (50,000 names are a few MiB), never by the archive's size.
    try:
        with os.scandir(folder) as it:
            entries = sorted(
                (entry.name, _is_dir(entry)) for entry in it if not entry.name.startswith(".")
            )
    except OSError as exc:
        raise InputError(folder, f"folder cannot be listed ({exc.strerror or exc})") from None
    if (
        volumes
        and entries
        and all(not is_dir and _suffix(name) in _SERIES_SUFFIXES for name, is_dir in entries)
    ):
        yield folder
        return
    for name, is_dir in entries:
        path = os.path.join(folder, name)
        if is_dir:
            try:
                folder_id = _folder_id(path)
            except OSError as exc:
                raise InputError(path, f"folder cannot be read ({exc.strerror or exc})") from None
            if folder_id in seen:
                continue  # a symlink back to a folder already walked (a loop, or a second link)
            seen.add(folder_id)
            yield from _scan(path, volumes, seen)
        elif is_candidate_image(name):
            yield path


def iter_image_files(inputs: Iterable[str | Path], volumes: bool = False) -> Iterator[str]:
    """Every image under ``inputs``, in a stable order (names sorted within each folder).

    Folders are walked with ``os.scandir`` as the iterator is consumed, so a folder of a
    million files costs one folder listing at a time. A file given directly is always
    yielded (a bad one becomes an error row); inside folders, hidden names and files whose
    suffix is not an image's (``.txt``, ``.json``...) are passed over. With ``volumes`` (a 3D
    model) a folder holding only DICOM files is one case, a series.

    Symlinks to folders are followed, but each folder (by device and inode) is walked once
    per call: a link back to a folder above it (a loop) or a second link to a folder already
    walked is passed over, so a loop neither repeats files nor fails.

    Raises:
        InputError: (at the call, before any file is read) an input that does not exist;
            (while iterating) a folder that cannot be listed, e.g. without read permission,
            named in the error: the walk stops there rather than silently leaving out part
            of an archive.
    """
    paths = [os.fspath(item) for item in inputs]
    for path in paths:
        if not os.path.exists(path):
            raise InputError(path, "file or folder not found")
    return _walk(paths, volumes)


def _walk(paths: list[str], volumes: bool) -> Iterator[str]:
    seen: set[tuple[int, int]] = set()
    for path in paths:
        if os.path.isdir(path):
            try:
                folder_id = _folder_id(path)
            except OSError as exc:
                raise InputError(path, f"folder cannot be read ({exc.strerror or exc})") from None
            if folder_id in seen:
                continue  # given twice, or inside a folder given before
            seen.add(folder_id)
            yield from _scan(path, volumes, seen)
        else:
            yield path


def iter_input_cases(
    inputs: Iterable[str | Path], volumes: bool = False
) -> Iterator[tuple[str, str, Callable[[], Image]]]:
    """``(case_id, file, load)`` for every image ``iter_image_files`` finds; an ``.npz``
    (MedMNIST layout) yields each of its images as ``<name>.npz#<case>``.

    With ``volumes`` (a 3D model) a folder of DICOM slices is read as one series. Loading is
    deferred to ``load()`` so one bad file can be recorded and skipped.

    Raises:
        InputError: (at the call) an input that does not exist.
    """
    from medlens.data.dicom_series import read_dicom_series
    from medlens.data.medmnist import load_medmnist_npz
    from medlens.data.readers import read_image

    for file in iter_image_files(inputs, volumes):
        path = Path(file)
        if path.is_dir():
            yield file, file, partial(read_dicom_series, path)
        elif path.suffix.lower() == ".npz" and path.is_file():
            source = load_medmnist_npz(path).as_source()
            for case in source.cases:
                yield f"{path.name}#{case.case_id}", file, partial(source.load, case)
        else:
            yield file, file, partial(read_image, path)
