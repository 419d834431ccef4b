"""``medlens predict``: one input walker for both engines, and options checked per task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from medlens.cli import app
from medlens.data.medmnist import load_medmnist_npz

runner = CliRunner()


def _dicom(path: Path, pixels: np.ndarray) -> None:
    """A single-frame 8-bit Secondary Capture file (no suffix needed: DICOM is read by content)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def mixed_folder(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PneumoniaMNIST test images in every format a user drops into a folder, plus
    files that are no images."""
    images = load_medmnist_npz(pneumonia_npz).images["test"][:8]
    root = tmp_path_factory.mktemp("mixed")
    (root / "sub").mkdir()
    PILImage.fromarray(images[0]).save(root / "a.png")
    PILImage.fromarray(images[1]).save(root / "b.bmp")
    PILImage.fromarray(images[2]).save(root / "c.gif")
    PILImage.fromarray(images[3]).save(root / "sub" / "f.jpg")
    volume = nib.Nifti1Image(images[4].T.astype(np.float32), np.eye(4))
    nib.save(volume, root / "d.nii.gz")
    _dicom(root / "e", images[5])
    _dicom(root / "1.2.840.10008.5.1.4.1.1.7.3", images[6])  # named by its UID
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"")
    return root


EXPECTED = {"a.png", "b.bmp", "c.gif", "d.nii.gz", "e", "1.2.840.10008.5.1.4.1.1.7.3", "sub/f.jpg"}


def _files(table: pd.DataFrame, root: Path) -> set[str]:
    return {str(Path(f).relative_to(root)) for f in table["case_id"]}


def test_both_engines_pick_the_same_files(
    pneumonia_run: Path, mixed_folder: Path, tmp_path: Path
) -> None:
    plain, streamed = tmp_path / "plain.csv", tmp_path / "streamed.csv"
    result = runner.invoke(app, ["predict", str(pneumonia_run), str(mixed_folder), "--out", str(plain), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["predict", str(pneumonia_run), str(mixed_folder), "--engine", "local",
         "--workers", "1", "--out", str(streamed), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    a, b = pd.read_csv(plain), pd.read_csv(streamed)
    assert _files(a, mixed_folder) == _files(b, mixed_folder) == EXPECTED
    # every file was read and scored, by both engines, to the same probabilities
    assert a["error"].isna().all() and b["error"].isna().all()
    merged = a.merge(b, on="case_id", suffixes=("_plain", "_stream"))
    np.testing.assert_allclose(
        merged["prob_pneumonia_plain"], merged["prob_pneumonia_stream"], atol=1e-5
    )


@pytest.mark.parametrize(
    ("run", "option"),
    [
        ("pneumonia_run", ["--mask-format", "png"]),
        ("drive_run", ["--engine", "local"]),
        ("drive_run", ["--batch-size", "8"]),
        ("drive_run", ["--workers", "2"]),
        ("pneumonia_run", ["--workers", "2"]),  # streaming workers without --engine
        ("drive_run", ["--adapt-prior"]),
        ("pneumonia_run", ["--adapt-prior", "--engine", "local"]),  # a batch, not a stream
    ],
)
def test_an_option_that_does_not_apply_is_refused(
    run: str,
    option: list[str],
    request: pytest.FixtureRequest,
    mixed_folder: Path,
    tmp_path: Path,
) -> None:
    run_dir = request.getfixturevalue(run)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "medlens.cli", "predict", str(run_dir),
         str(mixed_folder / "a.png"), "--out", str(out), *option],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and option[0] in lines[0], proc.stderr
    assert not out.exists()  # refused before anything was written


def _batch(npz: Path, root: Path, normal: int, pneumonia: int) -> Path:
    """Real PneumoniaMNIST test images, ``normal`` of class 0 and ``pneumonia`` of class 1."""
    data = load_medmnist_npz(npz)
    images, labels = data.images["test"], np.asarray(data.labels["test"]).ravel()
    root.mkdir()
    for label, count in ((0, normal), (1, pneumonia)):
        for i in np.flatnonzero(labels == label)[:count]:
            PILImage.fromarray(images[i]).save(root / f"{label}_{i}.png")
    return root


def test_adapt_prior_estimates_the_batch_mix_and_keeps_decisions(
    pneumonia_run: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    from medlens.trust.label_shift import adapt_to_prior

    estimates = {}
    for name, normal, pneumonia in (("mostly_normal", 50, 10), ("mostly_pneumonia", 10, 50)):
        folder = _batch(pneumonia_npz, tmp_path / name, normal, pneumonia)
        plain, adapted = tmp_path / f"{name}_plain.csv", tmp_path / f"{name}.csv"
        for out, extra in ((plain, []), (adapted, ["--adapt-prior"])):
            result = runner.invoke(app, ["predict", str(pneumonia_run), str(folder), "--out", str(out), "--quiet", *extra])  # fmt: skip
            assert result.exit_code == 0, result.output
        a, b = pd.read_csv(plain), pd.read_csv(adapted)
        assert "adapted_prob_pneumonia" not in a.columns
        # decisions and calibrated probabilities are those of a plain predict
        assert a["pred"].tolist() == b["pred"].tolist()
        assert a["decision"].tolist() == b["decision"].tolist()
        np.testing.assert_allclose(a["prob_pneumonia"], b["prob_pneumonia"])
        record = json.loads((tmp_path / f"{name}.prior_shift.json").read_text())
        # cases flagged out of distribution are left out of the estimate and not adapted
        inside = b["ood"] == 0
        assert record["n_cases"] == inside.sum() and record["converged"]
        assert record["out_of_distribution_left_out"] == (~inside).sum()
        assert b.loc[~inside, "adapted_prob_pneumonia"].isna().all()
        assert "estimated class mix" in result.output
        # an estimate the batch itself shows to be shaky says so where it is printed
        assert ("not to be relied on" in result.output) == ("warning" in record)
        source = [record["source_prior"][c] for c in ("normal", "pneumonia")]
        target = [record["target_prior"][c] for c in ("normal", "pneumonia")]
        probs = b.loc[inside, ["prob_normal", "prob_pneumonia"]].to_numpy()
        np.testing.assert_allclose(
            b.loc[inside, ["adapted_prob_normal", "adapted_prob_pneumonia"]],
            adapt_to_prior(probs, source, target),
        )
        estimates[name] = target[1]
    # the estimate follows the batch's true mix, which it never saw
    assert estimates["mostly_normal"] < estimates["mostly_pneumonia"]


def test_adapt_prior_refuses_a_batch_too_small_to_estimate(
    pneumonia_run: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    folder = _batch(pneumonia_npz, tmp_path / "few", 5, 5)
    out = tmp_path / "few.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "medlens.cli", "predict", str(pneumonia_run), str(folder),
         "--out", str(out), "--adapt-prior", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "too few" in lines[0], proc.stderr
    assert not out.exists() and not (tmp_path / "few.prior_shift.json").exists()


def test_adapt_prior_on_a_batch_flagged_entirely_out_of_distribution_is_one_clear_error(
    tmp_path: Path,
) -> None:
    # it used to reach numpy with no case left ("zero-size array to reduction operation")
    from medlens.errors import InputError
    from medlens.inference.classify import _adapt_rows

    rows = [{"prob_normal": 0.3, "prob_pneumonia": 0.7, "ood": 1} for _ in range(40)]
    out = tmp_path / "predictions.csv"
    with pytest.raises(InputError, match="all 40 cases were flagged out of distribution") as err:
        _adapt_rows(rows, ["normal", "pneumonia"], np.array([0.4, 0.6]), out)
    assert str(out) in str(err.value)
