"""DICOM Segmentation (SEG) objects in and out, aligned slice by slice to their source series.

Reading and writing go through highdicom; this module adds the alignment to the series as
``read_dicom_series`` orders it (slice 0 the most negative along the slice normal), errors
that name the file, and the conversion to and from medlens label maps.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from medlens import __version__
from medlens.data.dicom import is_dicom_file, pixel_spacing, read_dicom_dataset
from medlens.data.dicom_geometry import lps_affine, slice_normal, slice_offsets
from medlens.data.dicom_limits import check_codestreams, check_dicom_budget
from medlens.data.dicom_series import series_files
from medlens.data.image import Image
from medlens.data.validation import first_line
from medlens.errors import InputError
from medlens.io_utils import write_atomic

SEGMENTATION_STORAGE = UID("1.2.840.10008.5.1.4.1.1.66.4")
_GEOMETRY_TOLERANCE_MM = 0.01


@dataclass
class SegmentationMask:
    """The segments of a DICOM SEG, one boolean channel per segment.

    Attributes:
        array: ``(S, D, H, W)`` bool; channel ``i`` is segment ``segment_numbers[i]``; slice
            ``d`` lies on ``sop_instance_uids[d]`` of the source series.
        segment_numbers: the SEG's segment numbers (1-based, as stored).
        segment_labels: ``SegmentLabel`` of each segment.
        spacing: ``(dz, dy, dx)`` in mm.
        affine: 4x4 matrix from ``(k, r, c)`` voxel indices to LPS world mm, or None.
        series_instance_uid: the referenced source series.
        sop_instance_uids: per slice, the source image it lies on ("" where none is known).
        source: the SEG file.
    """

    array: np.ndarray
    segment_numbers: list[int]
    segment_labels: list[str]
    spacing: tuple[float, float, float]
    affine: np.ndarray | None
    series_instance_uid: str
    sop_instance_uids: list[str] = field(default_factory=list)
    source: str = ""


def is_dicom_seg(path: str | Path) -> bool:
    """True when ``path`` is a DICOM file whose SOP class is Segmentation Storage."""
    if not is_dicom_file(path):
        return False
    try:
        ds = read_dicom_dataset(path, header_only=True)
    except InputError:
        return False
    return ds.get("SOPClassUID") == SEGMENTATION_STORAGE


def read_dicom_seg(path: str | Path, series: Image | None = None) -> SegmentationMask:
    """Read a DICOM SEG as one boolean mask per segment.

    With ``series`` (an ``Image`` from ``read_dicom_series``), each slice of the mask is the
    segmentation of the series' slice at the same index, matched through the source SOP
    Instance UIDs the SEG references; slices the SEG does not cover are empty, and spacing
    and affine are the series'. Without it, highdicom rebuilds the volume from the frames'
    plane positions, ordered like ``read_dicom_series`` (most negative along the normal
    first). FRACTIONAL segments are thresholded at 0.5.

    The SEG's declared frames (Rows x Columns x NumberOfFrames) are checked against the
    voxel budget (``$MEDLENS_MAX_VOXELS``, ``medlens.data.budget``) before highdicom decodes
    them.

    Raises:
        VoxelBudgetError: the SEG declares more voxels than the budget.
        InputError: unreadable or truncated file, not a SEG, a SEG of another series, frames
            whose spatial locations are not preserved, references to images missing from
            ``series``, or frames that form no regular volume when ``series`` is None.
    """
    path = Path(path)
    seg = _open_seg(path)
    numbers = [int(n) for n in seg.segment_numbers]
    labels = [str(seg.get_segment_description(n).SegmentLabel) for n in numbers]
    referenced = _referenced_series(seg)
    try:
        if series is not None:
            array, uids, spacing, affine = _pixels_on_series(path, seg, series, referenced)
        else:
            array, uids, spacing, affine = _pixels_as_volume(path, seg)
    except InputError:
        raise
    except Exception as exc:  # highdicom: ValueError, RuntimeError; pydicom decode errors
        raise InputError(path, f"SEG pixels cannot be decoded ({first_line(exc)})") from None
    return SegmentationMask(
        array=np.ascontiguousarray(np.moveaxis(array, -1, 0) > 0.5),
        segment_numbers=numbers,
        segment_labels=labels,
        spacing=spacing,
        affine=affine,
        series_instance_uid=next(iter(referenced), ""),
        sop_instance_uids=uids,
        source=str(path),
    )


def as_label_map(mask: SegmentationMask) -> Image:
    """The segments as one ``(1, D, H, W)`` uint8 label map: 0 background, ``i + 1`` for
    ``mask.segment_numbers[i]``; ``meta["class_names"]`` is ``["background", *labels]``.

    Raises:
        InputError: segments overlap (a label map holds one class per voxel), or more than
            255 segments.
    """
    count = mask.array.sum(axis=0, dtype=np.int32)
    if np.any(count > 1):
        overlap = count > 1
        involved = [
            label
            for label, seg in zip(mask.segment_labels, mask.array, strict=True)
            if seg[overlap].any()
        ]
        raise InputError(
            mask.source,
            f"segments {involved} overlap in {int(overlap.sum())} voxels; a label map needs "
            "segments that do not overlap (use the per-segment masks instead)",
        )
    if len(mask.segment_numbers) > 255:
        raise InputError(mask.source, f"holds {len(mask.segment_numbers)} segments; at most 255")
    labels = np.zeros(mask.array.shape[1:], dtype=np.uint8)
    for index, segment in enumerate(mask.array):
        labels[segment] = index + 1
    meta: dict[str, Any] = {
        "format": "dicom_seg",
        "class_names": ["background", *mask.segment_labels],
        "segment_numbers": list(mask.segment_numbers),
        "series_uid": mask.series_instance_uid,
        "slice_sop_instance_uids": list(mask.sop_instance_uids),
    }
    return Image(
        array=labels[None],
        spacing=tuple(mask.spacing),
        affine=mask.affine,
        source=mask.source,
        meta=meta,
    )


def sorted_series_datasets(source: str | Path | Sequence[Dataset]) -> list[Dataset]:
    """The headers of one DICOM series in ``read_dicom_series``' slice order.

    Args:
        source: a folder holding one series (headers are read without pixel data), or the
            series' datasets in any order.

    Returns:
        The datasets sorted by ``ImagePositionPatient`` along the slice normal (most negative
        first), or by ``InstanceNumber`` when positions are missing.

    Raises:
        InputError: an empty folder, a non-DICOM file, several series, or slices that can be
            sorted neither way.
    """
    if isinstance(source, str | Path):
        folder = Path(source)
        if not folder.is_dir():
            raise InputError(folder, "is not a folder holding a DICOM series")
        datasets = [read_dicom_dataset(p, header_only=True) for p in series_files(folder)]
        where = str(folder)
    else:
        datasets = list(source)
        where = "source datasets"
    if not datasets:
        raise InputError(where, "holds no DICOM files")
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(uids) != 1:
        raise InputError(where, f"holds {len(uids)} series ({', '.join(sorted(uids))}); give one")
    positions = [ds.get("ImagePositionPatient") for ds in datasets]
    orientation = datasets[0].get("ImageOrientationPatient")
    if orientation is not None and all(p is not None for p in positions):
        offsets = slice_offsets(np.asarray(positions, dtype=np.float64), orientation)
        order = np.argsort(offsets, kind="stable")
    else:
        numbers = [ds.get("InstanceNumber") for ds in datasets]
        if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
            raise InputError(where, "slices have neither positions nor distinct InstanceNumbers")
        order = np.argsort([int(n) for n in numbers], kind="stable")
    return [datasets[int(i)] for i in order]


def write_dicom_seg(
    label_map: Image,
    source_series: str | Path | Sequence[Dataset],
    segment_names: list[str],
    path: str | Path,
    algorithm_name: str = "medlens",
    algorithm_version: str = __version__,
) -> Path:
    """Write a label map as a BINARY DICOM SEG that references its source series.

    Label ``i`` (1 <= i <= len(segment_names)) becomes segment number ``i`` named
    ``segment_names[i - 1]``; 0 is background. Slice ``d`` of the label map is the
    segmentation of slice ``d`` of the series in ``read_dicom_series`` order. Segments are
    coded generically (category and type SCT "Tissue"); the name is the ``SegmentLabel``.
    Manufacturer is "medlens", the model name and software version are the algorithm's.
    Empty frames are omitted (as highdicom does by default) unless the map is all background.
    The file is written atomically.

    Args:
        label_map: ``(1, D, H, W)`` (or ``(1, H, W)`` for a one-slice series) class indices.
        source_series: the folder of the source series, or its datasets (headers suffice).
        segment_names: the name of each non-background class, in label order.
        path: the output ``.dcm`` file.
        algorithm_name: recorded as the segmentation algorithm and the model name.
        algorithm_version: recorded as its version and the software version.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: labels that are not integers in ``0..len(segment_names)``, a label map
            whose shape or affine does not match the series, or a source that is not one series.
    """
    path = Path(path)
    datasets = sorted_series_datasets(source_series)
    labels = _label_array(label_map, len(segment_names))
    if labels.ndim == 2:
        labels = labels[None]
    first = datasets[0]
    expected = (len(datasets), int(first.Rows), int(first.Columns))
    where = label_map.source or "label map"
    if labels.shape != expected:
        raise InputError(
            where,
            f"is {labels.shape} (D, H, W) but the source series is {expected} (slices, rows, columns)",
        )
    _check_affine(label_map, datasets, where)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=algorithm_version
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=name,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for i, name in enumerate(segment_names, start=1)
    ]
    try:
        with warnings.catch_warnings():
            # highdicom doubts single-component patient names copied from the source: not ours
            warnings.filterwarnings("ignore", ".*intended person name", UserWarning)
            seg = hd.seg.Segmentation(
                source_images=datasets,
                pixel_array=labels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=900,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="medlens",
                manufacturer_model_name=algorithm_name,
                software_versions=algorithm_version,
                device_serial_number="0",
                content_label="SEGMENTATION",
                content_description=f"{algorithm_name} {algorithm_version}"[:64],
                series_description=f"Segmentation by {algorithm_name}"[:64],
                omit_empty_frames=bool(labels.any()),
                # an empty SpecificCharacterSet (seen in real CTs) means the default repertoire
                specific_character_set=first.get("SpecificCharacterSet") or None,
            )
        buffer = io.BytesIO()
        seg.save_as(buffer, enforce_file_format=True)
    except AttributeError as exc:
        # highdicom copies the patient and study modules from the source; a source series
        # that lacks one of their attributes (e.g. PatientBirthDate) cannot be referenced
        raise InputError(
            path,
            f"cannot be written as DICOM SEG: the source series lacks an attribute highdicom "
            f"copies ({first_line(exc)})",
        ) from None
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"cannot be written as DICOM SEG ({first_line(exc)})") from None
    return write_atomic(path, buffer.getvalue())


def _open_seg(path: Path) -> hd.seg.Segmentation:
    ds = read_dicom_dataset(path)
    if ds.get("SOPClassUID") != SEGMENTATION_STORAGE:
        name = getattr(ds.get("SOPClassUID"), "name", "no SOP class")
        raise InputError(path, f"is {name}, not a DICOM Segmentation")
    _check_pixel_data_length(ds, path)
    check_dicom_budget(ds, path)  # frames are decoded by highdicom: refuse a bomb before
    check_codestreams(ds, path)
    try:
        return hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as exc:  # highdicom validates the IOD: AttributeError, ValueError, ...
        raise InputError(path, f"is not a valid DICOM SEG ({first_line(exc)})") from None


def _check_pixel_data_length(ds: Dataset, path: Path) -> None:
    """A cut-short file otherwise surfaces later as a cryptic reshape error."""
    if "PixelData" not in ds:
        raise InputError(path, "has no pixel data: the file is cut short or not a SEG")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        return  # encapsulated frames: the decoder reports damage
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = frames * int(ds.Rows) * int(ds.Columns) * int(ds.get("BitsAllocated", 1))
    expected = (bits + 7) // 8
    stored = len(ds.PixelData)
    if stored < expected:
        raise InputError(path, f"is cut short: its pixel data holds {stored} of {expected} bytes")


def _referenced_series(seg: hd.seg.Segmentation) -> dict[str, set[str]]:
    """Referenced series UID -> its referenced SOP Instance UIDs."""
    return {
        str(item.SeriesInstanceUID): {
            str(ref.ReferencedSOPInstanceUID) for ref in item.get("ReferencedInstanceSequence", [])
        }
        for item in seg.get("ReferencedSeriesSequence", [])
    }


def _pixels_on_series(
    path: Path, seg: hd.seg.Segmentation, series: Image, referenced: dict[str, set[str]]
) -> tuple[np.ndarray, list[str], tuple[float, float, float], np.ndarray | None]:
    series_uid = str(series.meta.get("series_uid", ""))
    if referenced and series_uid not in referenced:
        raise InputError(
            path,
            f"references series {', '.join(sorted(referenced))}, not {series.source} "
            f"({series_uid or 'no SeriesInstanceUID'})",
        )
    files = series.meta.get("slice_files")
    if not files or series.spatial_dims != 3:
        raise InputError(series.source, "is not a DICOM series read by read_dicom_series")
    if (int(seg.Rows), int(seg.Columns)) != series.spatial_shape[1:]:
        raise InputError(
            path,
            f"frames are {seg.Rows}x{seg.Columns} but the series {series.source} is "
            f"{series.spatial_shape[1]}x{series.spatial_shape[2]}",
        )
    preserved = _spatial_locations_preserved(path, seg)
    headers = [read_dicom_dataset(f, header_only=True) for f in files]
    uids = [str(ds.SOPInstanceUID) for ds in headers]
    frames = int(headers[0].get("NumberOfFrames", 1) or 1)
    if len(headers) == 1 and frames > 1:  # one multi-frame source image
        array = seg.get_pixels_by_source_frame(
            uids[0],
            source_frame_numbers=list(range(1, frames + 1)),
            ignore_spatial_locations=not preserved,
            assert_missing_frames_are_empty=True,
            skip_overlap_checks=True,
        )
        uids = uids * frames
    else:
        missing = referenced.get(series_uid, set()) - set(uids)
        if missing:
            raise InputError(
                path,
                f"references {len(missing)} images missing from the series {series.source} "
                f"(e.g. {sorted(missing)[0]})",
            )
        array = seg.get_pixels_by_source_instance(
            uids,
            ignore_spatial_locations=not preserved,
            assert_missing_frames_are_empty=True,
            skip_overlap_checks=True,
        )
    spacing = (float(series.spacing[0]), float(series.spacing[1]), float(series.spacing[2]))
    return array, uids, spacing, series.affine


def _spatial_locations_preserved(path: Path, seg: hd.seg.Segmentation) -> bool:
    """False when the SEG leaves ``SpatialLocationsPreserved`` out (frames are then taken to
    lie on their source images, as every common writer does); an explicit NO is an error."""
    flags = {
        str(source.get("SpatialLocationsPreserved", ""))
        for frame in seg.get("PerFrameFunctionalGroupsSequence", [])
        for derivation in frame.get("DerivationImageSequence", [])
        for source in derivation.get("SourceImageSequence", [])
    }
    if "NO" in flags:
        raise InputError(path, "says its frames do not keep the source images' pixel locations")
    return flags == {"YES"}


def _pixels_as_volume(
    path: Path, seg: hd.seg.Segmentation
) -> tuple[np.ndarray, list[str], tuple[float, float, float], np.ndarray]:
    try:
        volume = seg.get_volume(skip_overlap_checks=True)
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            path,
            f"frames do not form a regular volume ({first_line(exc)}); pass the source series",
        ) from None
    affine = np.asarray(volume.affine, dtype=np.float64)
    normal = slice_normal(_orientation_of(affine))
    if float(affine[:3, 0] @ normal) < 0:
        volume = volume.flip_spatial(0)
        affine = np.asarray(volume.affine, dtype=np.float64)
    spacing = tuple(float(s) for s in volume.spacing)
    uids = _slice_sources(seg, affine, volume.spatial_shape[0], spacing[0])
    return volume.array, uids, (spacing[0], spacing[1], spacing[2]), affine


def _orientation_of(affine: np.ndarray) -> np.ndarray:
    """``ImageOrientationPatient`` (row cosines, then column cosines) of a ``(k, r, c)`` affine."""
    row_cosines = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    column_cosines = affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    return np.concatenate([row_cosines, column_cosines])


def _slice_sources(
    seg: hd.seg.Segmentation, affine: np.ndarray, depth: int, dz: float
) -> list[str]:
    """The source SOP Instance UID whose frame lies on each slice ("" when none does)."""
    sources: list[tuple[np.ndarray, str]] = []
    for frame in seg.get("PerFrameFunctionalGroupsSequence", []):
        plane = frame.get("PlanePositionSequence")
        derivation = frame.get("DerivationImageSequence")
        if not plane or not derivation or not derivation[0].get("SourceImageSequence"):
            continue
        position = np.asarray(plane[0].ImagePositionPatient, dtype=np.float64)
        uid = str(derivation[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        sources.append((position, uid))
    uids = []
    for k in range(depth):
        origin = affine[:3, 3] + k * affine[:3, 0]
        match = [uid for pos, uid in sources if np.linalg.norm(pos - origin) < 0.01 * max(dz, 1e-3)]
        uids.append(match[0] if match else "")
    return uids


def _label_array(label_map: Image, segments: int) -> np.ndarray:
    where = label_map.source or "label map"
    if label_map.num_channels != 1:
        raise InputError(where, f"has {label_map.num_channels} channels; a label map has one")
    values = np.asarray(label_map.array[0])
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.mod(values, 1) == 0):
        raise InputError(where, "holds non-integer labels; a label map holds class indices")
    found = np.unique(values)
    bad = [int(v) for v in found if v < 0 or v > segments]
    if bad:
        raise InputError(
            where, f"holds labels {bad} outside 0..{segments} ({segments} segment names given)"
        )
    return values.astype(np.uint8)


def _check_affine(label_map: Image, datasets: list[Dataset], where: str) -> None:
    """The label map's own affine, when it has one, must be the series' (LPS, mm)."""
    if label_map.affine is None or label_map.spatial_dims != 3 or len(datasets) < 2:
        return
    first, last = datasets[0], datasets[-1]
    if first.get("ImagePositionPatient") is None or first.get("ImageOrientationPatient") is None:
        return
    dy, dx, _ = pixel_spacing(first)
    origin = np.asarray(first.ImagePositionPatient, dtype=np.float64)
    step = (np.asarray(last.ImagePositionPatient, dtype=np.float64) - origin) / (len(datasets) - 1)
    expected = lps_affine(origin, first.ImageOrientationPatient, dy, dx, step)
    if not np.allclose(label_map.affine, expected, atol=_GEOMETRY_TOLERANCE_MM, rtol=1e-5):
        raise InputError(
            where,
            "lies on a different grid from the source series (affines differ); resample it "
            "onto the series first",
        )
