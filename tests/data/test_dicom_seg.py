"""DICOM SEG in and out, checked against the real CT + SEG of dcmqi and independent readers."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medlens.data.dicom_seg import (
    SEGMENTATION_STORAGE,
    as_label_map,
    read_dicom_seg,
    sorted_series_datasets,
    write_dicom_seg,
)
from medlens.data.dicom_series import read_dicom_series
from medlens.data.image import Image
from medlens.errors import InputError

# dcmqi's PROVENANCE: foreground pixels of seg/liver.dcm per frame, frames 1..3
LIVER_FRAME_COUNTS = (36233, 35645, 35220)


def read_nrrd_labels(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    """A gzip NRRD label map as (z, y, x), parsed by hand (pynrrd is not installed)."""
    header, _, body = path.read_bytes().partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in header.decode().splitlines()[1:] if ": " in line)
    assert fields["type"] == "short" and fields["encoding"] == "gzip"
    assert fields["endian"] == "little"
    x, y, z = (int(v) for v in fields["sizes"].split())
    return np.frombuffer(gzip.decompress(body), "<i2").reshape(z, y, x), fields


@pytest.fixture(scope="module")
def seg_dir(ct_dir: Path) -> Path:
    return ct_dir.parent / "seg"


@pytest.fixture(scope="module")
def ct_series(ct_dir: Path) -> Image:
    return read_dicom_series(ct_dir)


def test_liver_seg_matches_the_nrrd_label_map(ct_series: Image, seg_dir: Path) -> None:
    mask = read_dicom_seg(seg_dir / "liver.dcm", ct_series)
    nrrd, fields = read_nrrd_labels(seg_dir.parent / "nrrd" / "liver_seg.nrrd")

    assert mask.array.shape == (1, 3, 512, 512) and mask.array.dtype == bool
    assert mask.segment_labels == ["Liver"] and mask.segment_numbers == [1]
    np.testing.assert_array_equal(mask.array[0], nrrd > 0)
    # the NRRD's origin is slice 0's ImagePositionPatient (LPS), as in the series' affine
    origin = [float(v) for v in fields["space origin"].strip("()").split(",")]
    np.testing.assert_allclose(ct_series.affine[:3, 3], origin, atol=1e-4)
    assert mask.series_instance_uid == ct_series.meta["series_uid"]


def test_liver_seg_frames_match_provenance_and_highdicom(
    ct_series: Image, ct_dir: Path, seg_dir: Path
) -> None:
    mask = read_dicom_seg(seg_dir / "liver.dcm", ct_series)
    seg = pydicom.dcmread(seg_dir / "liver.dcm")
    frame_sources = [
        f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for f in seg.PerFrameFunctionalGroupsSequence
    ]
    counts = dict(zip(frame_sources, LIVER_FRAME_COUNTS, strict=True))
    ours = mask.array[0].reshape(3, -1).sum(axis=1)
    assert [counts[uid] for uid in mask.sop_instance_uids] == ours.tolist()

    # highdicom's own pixels for the CT files, ordered by z read with pydicom
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(ct_dir.iterdir())]
    headers.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    pixels = hd.seg.segread(seg_dir / "liver.dcm").get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in headers], ignore_spatial_locations=True
    )
    np.testing.assert_array_equal(mask.array[0], pixels[..., 0] > 0)


def test_without_the_series_the_volume_is_in_series_order(ct_series: Image, seg_dir: Path) -> None:
    aligned = read_dicom_seg(seg_dir / "liver.dcm", ct_series)
    alone = read_dicom_seg(seg_dir / "liver.dcm")
    np.testing.assert_array_equal(alone.array, aligned.array)
    np.testing.assert_allclose(alone.affine, ct_series.affine, atol=1e-3)
    assert alone.sop_instance_uids == aligned.sop_instance_uids


def test_overlapping_segments_refused_as_label_map(ct_series: Image, seg_dir: Path) -> None:
    mask = read_dicom_seg(seg_dir / "partial_overlaps.dcm", ct_series)
    assert mask.segment_labels == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]
    assert mask.array.shape == (5, 3, 512, 512)
    assert (mask.array.sum(axis=0) > 1).any()
    with pytest.raises(InputError, match="overlap") as info:
        as_label_map(mask)
    assert info.value.path.endswith("partial_overlaps.dcm")


def test_liver_label_map(ct_series: Image, seg_dir: Path) -> None:
    labels = as_label_map(read_dicom_seg(seg_dir / "liver.dcm", ct_series))
    assert labels.array.shape == (1, 3, 512, 512) and labels.array.dtype == np.uint8
    assert labels.meta["class_names"] == ["background", "Liver"]
    assert labels.spacing == ct_series.spacing
    assert labels.array.reshape(3, -1).sum(axis=1).tolist() == list(LIVER_FRAME_COUNTS)


def test_write_round_trip(ct_series: Image, ct_dir: Path, seg_dir: Path, tmp_path: Path) -> None:
    liver = as_label_map(read_dicom_seg(seg_dir / "liver.dcm", ct_series))
    out = write_dicom_seg(liver, ct_dir, ["liver"], tmp_path / "out" / "liver.dcm")

    seg = hd.seg.segread(out)
    assert seg.SOPClassUID == SEGMENTATION_STORAGE
    assert seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_series.meta["series_uid"]
    assert seg.Manufacturer == "medlens" and seg.SegmentSequence[0].SegmentLabel == "liver"
    uids = [
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
        for f in ct_series.meta["slice_files"]
    ]
    pixels = seg.get_pixels_by_source_instance(uids)
    np.testing.assert_array_equal(pixels[..., 0], liver.array[0])
    again = as_label_map(read_dicom_seg(out, ct_series))
    np.testing.assert_array_equal(again.array, liver.array)
    assert [p.name for p in out.parent.iterdir()] == ["liver.dcm"]  # no temporary left


def test_write_two_segments_from_nrrd(ct_series: Image, ct_dir: Path, tmp_path: Path) -> None:
    nrrd, _ = read_nrrd_labels(ct_dir.parent / "nrrd" / "liver_spine_seg.nrrd")
    labels = ct_series.with_array(nrrd[None].astype(np.uint8))
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(ct_dir.iterdir())]
    random.Random(0).shuffle(datasets)  # any order in, series order out
    out = write_dicom_seg(labels, datasets, ["liver", "spine"], tmp_path / "two.dcm")

    mask = read_dicom_seg(out, ct_series)
    assert mask.segment_labels == ["liver", "spine"] and mask.segment_numbers == [1, 2]
    np.testing.assert_array_equal(mask.array[1], nrrd == 2)
    np.testing.assert_array_equal(as_label_map(mask).array[0], nrrd)


def test_sorted_series_datasets_follow_read_dicom_series(ct_series: Image, ct_dir: Path) -> None:
    expected = [
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
        for f in ct_series.meta["slice_files"]
    ]
    from_folder = [ds.SOPInstanceUID for ds in sorted_series_datasets(ct_dir)]
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(ct_dir.iterdir())]
    from_list = [ds.SOPInstanceUID for ds in sorted_series_datasets(datasets[::-1])]
    assert from_folder == expected == from_list


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.99])
def test_truncated_seg_is_an_input_error(seg_dir: Path, tmp_path: Path, fraction: float) -> None:
    data = (seg_dir / "liver.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError) as info:
        read_dicom_seg(cut)
    assert info.value.path == str(cut)


def test_seg_of_another_series_refused(ct_copy: Path, seg_dir: Path) -> None:
    for path in ct_copy.iterdir():
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.save_as(path)
    with pytest.raises(InputError, match="references series"):
        read_dicom_seg(seg_dir / "liver.dcm", read_dicom_series(ct_copy))


def test_not_a_seg(ct_dir: Path) -> None:
    with pytest.raises(InputError, match="not a DICOM Segmentation"):
        read_dicom_seg(ct_dir / "01.dcm")


def test_write_refuses_bad_label_maps(ct_series: Image, ct_dir: Path, tmp_path: Path) -> None:
    too_many = ct_series.with_array(np.full((1, 3, 512, 512), 3, dtype=np.uint8))
    with pytest.raises(InputError, match=r"labels \[3\] outside 0..2"):
        write_dicom_seg(too_many, ct_dir, ["a", "b"], tmp_path / "x.dcm")
    wrong_shape = Image(np.zeros((1, 2, 512, 512), np.uint8), (1.0, 0.8, 0.8), source="m.nii")
    with pytest.raises(InputError, match="source series"):
        write_dicom_seg(wrong_shape, ct_dir, ["a"], tmp_path / "x.dcm")
    flipped = ct_series.with_array(np.zeros((1, 3, 512, 512), np.uint8))
    flipped.affine = ct_series.affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(InputError, match="different grid"):
        write_dicom_seg(flipped, ct_dir, ["a"], tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_a_source_without_patient_attributes_is_one_input_error(
    ct_series: Image, ct_dir: Path, seg_dir: Path, tmp_path: Path
) -> None:
    datasets = [pydicom.dcmread(f) for f in ct_series.meta["slice_files"]]
    for ds in datasets:
        del ds.PatientBirthDate
    liver = as_label_map(read_dicom_seg(seg_dir / "liver.dcm", ct_series))
    target = tmp_path / "liver.dcm"
    with pytest.raises(InputError, match="lacks an attribute highdicom copies.*PatientBirthDate"):
        write_dicom_seg(liver, datasets, ["liver"], target)
    assert not list(tmp_path.iterdir())  # nothing half-written
