"""Read a folder holding one DICOM series as a volume sorted by slice position."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medlens.data.budget import VoxelBudgetError, declared_voxels, voxel_budget
from medlens.data.dicom import (
    dicom_meta,
    dicom_pixels,
    pixel_spacing,
    read_dicom_dataset,
    read_dicom_file,
)
from medlens.data.dicom_geometry import irregular_spacing, lps_affine, slice_offsets
from medlens.data.dicom_limits import declared_dims
from medlens.data.image import Image
from medlens.errors import InputError

_NOT_SLICES = {"dicomdir", "thumbs.db"}


def series_files(folder: str | Path) -> list[Path]:
    """Every regular file under ``folder`` (recursively, sorted), except hidden files and
    ``DICOMDIR`` indexes."""
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name.lower() not in _NOT_SLICES
    )


def read_dicom_series(
    folder: str | Path, series_uid: str | None = None, max_voxels: int | None = None
) -> Image:
    """Read the DICOM series in ``folder`` as a ``(C, Z, Y, X)`` volume (C = 1 for grey).

    Files are grouped by ``SeriesInstanceUID``; a folder with several series is an error unless
    ``series_uid`` picks one. Slices are sorted by ``ImagePositionPatient`` projected on the
    slice normal (``row x column`` of ``ImageOrientationPatient``), so slice 0 is the most
    negative along the normal; without positions, by ``InstanceNumber``. Spacing is
    ``(dz, dy, dx)`` in mm with ``dz`` the mean step between positions (``SpacingBetweenSlices``
    or ``SliceThickness`` when positions are missing). ``affine`` maps ``(k, r, c)`` to LPS mm.
    ``meta["slice_files"]`` lists the files in slice order; other meta as ``read_dicom_file``.

    The series' total declared size (the sum over its files of Rows x Columns x
    NumberOfFrames x SamplesPerPixel) is checked against the voxel budget (``max_voxels``,
    None for ``$MEDLENS_MAX_VOXELS`` or the default) from the headers alone, before any
    slice is decoded.

    Raises:
        VoxelBudgetError: the series declares more voxels than the budget.
        InputError: no files, a non-DICOM file, several series, mixed orientations or image
            sizes, duplicate or unevenly spaced slices, or any slice that cannot be decoded.
    """
    folder = Path(folder)
    limit = voxel_budget(max_voxels)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    files = series_files(folder)
    if not files:
        raise InputError(folder, "holds no DICOM files")
    headers = [(path, read_dicom_dataset(path, header_only=True)) for path in files]
    members = _choose_series(folder, headers, series_uid)
    _check_series_budget(folder, members, limit)
    if len(members) == 1:
        return _single_file_series(members[0][0], limit)
    return _stack(folder, members, limit)


def _check_series_budget(folder: Path, members: list[tuple[Path, Dataset]], limit: int) -> None:
    total = sum(declared_voxels(declared_dims(ds)) for _, ds in members)
    if total > limit:
        raise VoxelBudgetError(folder, total, limit, f"{len(members)} files of the series")


def _choose_series(
    folder: Path, headers: list[tuple[Path, Dataset]], series_uid: str | None
) -> list[tuple[Path, Dataset]]:
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    for path, ds in headers:
        uid = str(ds.get("SeriesInstanceUID", ""))
        if not uid:
            raise InputError(path, "has no SeriesInstanceUID")
        groups[uid].append((path, ds))
    if series_uid is not None:
        if series_uid not in groups:
            raise InputError(
                folder, f"holds no series {series_uid}; it holds {', '.join(sorted(groups))}"
            )
        return groups[series_uid]
    if len(groups) > 1:
        listing = "; ".join(
            f"{uid} ({members[0][1].get('Modality', '?')}, {len(members)} files, "
            f"'{members[0][1].get('SeriesDescription', '')}')"
            for uid, members in sorted(groups.items())
        )
        raise InputError(
            folder, f"holds {len(groups)} series, choose one with series_uid: {listing}"
        )
    return next(iter(groups.values()))


def _single_file_series(path: Path, limit: int) -> Image:
    image = read_dicom_file(path, max_voxels=limit)
    if image.spatial_dims == 3:
        return image
    ds = read_dicom_dataset(path, header_only=True)
    thickness = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0
    meta = {**image.meta, "slice_files": [str(path)]}
    return Image(
        array=image.array[:, None],
        spacing=(float(thickness), *image.spacing),
        source=str(path.parent),
        meta=meta,
    )


def _stack(folder: Path, members: list[tuple[Path, Dataset]], limit: int) -> Image:
    first_path, first = members[0]
    for path, ds in members:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(path, "is a multi-frame file inside a multi-file series")
        if (ds.get("Rows"), ds.get("Columns")) != (first.get("Rows"), first.get("Columns")):
            raise InputError(
                path,
                f"is {ds.get('Rows')}x{ds.get('Columns')} but {first_path.name} is "
                f"{first.get('Rows')}x{first.get('Columns')} in the same series",
            )
    dy, dx, known = pixel_spacing(first)
    order, dz, affine, how = _slice_order(folder, members, dy, dx)
    ordered = [members[i][0] for i in order]
    slices = []
    for path in ordered:
        ds = read_dicom_dataset(path, max_voxels=limit)
        slices.append(dicom_pixels(ds, path, max_voxels=limit))  # (C, 1, H, W)
    array = np.concatenate(slices, axis=1)
    meta = dicom_meta(first, array)
    meta.update(
        spacing_known=known,
        slice_order=how,
        slice_files=[str(p) for p in ordered],
    )
    meta.pop("sop_instance_uid")  # one per slice: see slice_files
    return Image(array=array, spacing=(dz, dy, dx), affine=affine, source=str(folder), meta=meta)


def _slice_order(
    folder: Path, members: list[tuple[Path, Dataset]], dy: float, dx: float
) -> tuple[list[int], float, np.ndarray | None, str]:
    """Slice order, slice spacing (mm), LPS affine and how the order was found."""
    positions = [ds.get("ImagePositionPatient") for _, ds in members]
    orientations = [ds.get("ImageOrientationPatient") for _, ds in members]
    if all(p is not None for p in positions) and all(o is not None for o in orientations):
        orientation = np.asarray(orientations[0], dtype=np.float64)
        for (path, _), other in zip(members, orientations, strict=True):
            if not np.allclose(np.asarray(other, dtype=np.float64), orientation, atol=1e-4):
                raise InputError(
                    path, "has a different ImageOrientationPatient from the rest of the series"
                )
        pos = np.asarray(positions, dtype=np.float64)
        offsets = slice_offsets(pos, orientation)
        order = [int(i) for i in np.argsort(offsets, kind="stable")]
        reason = irregular_spacing(offsets[order])
        if reason is not None:
            raise InputError(folder, reason)
        n = len(order)
        dz = float((offsets[order[-1]] - offsets[order[0]]) / (n - 1))
        step = (pos[order[-1]] - pos[order[0]]) / (n - 1)
        return order, dz, lps_affine(pos[order[0]], orientation, dy, dx, step), "position"
    numbers = [ds.get("InstanceNumber") for _, ds in members]
    if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
        raise InputError(
            folder,
            "slices have neither ImagePositionPatient nor distinct InstanceNumbers to sort by",
        )
    first = members[0][1]
    spacing = first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0
    order = [int(i) for i in np.argsort([int(n) for n in numbers], kind="stable")]
    return order, float(spacing), None, "instance_number"
