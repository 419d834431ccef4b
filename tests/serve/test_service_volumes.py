"""The service with a 3D run: a zipped CT series in, a DICOM SEG out; NIfTI in, NIfTI out."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pydicom
import pytest
from fastapi.testclient import TestClient

from medlens.data.dicom_seg import read_dicom_seg
from medlens.data.dicom_series import read_dicom_series
from medlens.data.masks import read_mask
from medlens.inference.segment import segment_files
from medlens.serve.app import create_app

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def client(ct_run: Path):
    # without tokens the service answers loopback Host headers only
    with TestClient(create_app([ct_run]), base_url="http://localhost") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ct_zip(ct_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(ct_dir.iterdir()):
            archive.write(path, f"CT/{path.name}")
    return buffer.getvalue()


def test_a_zipped_ct_series_gives_a_dicom_seg_of_that_series(
    client: TestClient, ct_dir: Path, ct_zip: bytes, tmp_path: Path
):
    response = client.post("/v1/segment", files={"file": ("ct.zip", ct_zip)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    (tmp_path / "seg.dcm").write_bytes(response.content)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    series_uid = pydicom.dcmread(next(ct_dir.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    mask = read_dicom_seg(tmp_path / "seg.dcm", series=read_dicom_series(ct_dir))
    assert mask.array.shape == (1, 3, 512, 512)
    assert response.headers["x-class-voxels"] == f"liver={int(mask.array.sum())}"

    as_nifti = client.post("/v1/segment?format=nifti", files={"file": ("ct.zip", ct_zip)})
    (tmp_path / "mask.nii.gz").write_bytes(as_nifti.content)
    nifti_mask = np.asarray(nib.load(tmp_path / "mask.nii.gz").dataobj)
    assert nifti_mask.shape == (3, 512, 512)
    np.testing.assert_array_equal(nifti_mask > 0, mask.array[0])

    png = client.post("/v1/segment?format=png", files={"file": ("ct.zip", ct_zip)})
    assert png.status_code == 422 and "nifti" in png.json()["detail"]


def test_a_nifti_volume_gets_the_mask_the_cli_writes_on_its_grid(
    client: TestClient, ct_run: Path, ct_dir: Path, tmp_path: Path
):
    series = read_dicom_series(ct_dir)
    affine = LPS_TO_RAS @ series.affine
    volume = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(series.array[0].astype(np.int16), affine), volume)
    response = client.post("/v1/segment", files={"file": ("scan.nii.gz", volume.read_bytes())})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    (tmp_path / "served.nii.gz").write_bytes(response.content)
    served = nib.load(tmp_path / "served.nii.gz")
    np.testing.assert_allclose(served.affine, affine, atol=1e-4)

    segment_files(ct_run, [volume], tmp_path / "cli", mask_format="nifti")
    expected = read_mask(tmp_path / "cli" / "ct.nii.gz").array[0]
    np.testing.assert_array_equal(np.asarray(served.dataobj), expected)


def test_the_preview_of_a_volume_is_its_middle_slice(client: TestClient, ct_zip: bytes):
    response = client.post("/v1/preview", files={"file": ("ct.zip", ct_zip)})
    image = PIL.Image.open(io.BytesIO(response.content))
    assert response.status_code == 200 and image.size == (512, 512) and image.mode == "L"
