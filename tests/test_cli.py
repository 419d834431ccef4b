"""The command line: instant help, one-line errors with a non-zero exit, the demo's data message."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest


def _medlens(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medlens.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_help_is_instant_and_lists_verbs() -> None:
    t0 = time.perf_counter()
    proc = _medlens("--help")
    assert proc.returncode == 0
    for verb in ("train", "evaluate", "predict", "demo", "download"):
        assert verb in proc.stdout
    assert time.perf_counter() - t0 < 10
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, medlens.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "False"


def test_malformed_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("data: {path: x.npz}\ntrain: {lr: -1}\n")
    proc = _medlens("train", str(config))
    assert proc.returncode == 2
    assert "train.lr" in proc.stderr and str(config) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_names_the_missing_file(tmp_path: Path) -> None:
    proc = _medlens("demo", "--data", str(tmp_path / "nowhere" / "pneumoniamnist.npz"))
    assert proc.returncode == 2
    assert "pneumoniamnist.npz" in proc.stderr and str(tmp_path / "nowhere") in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def cli_run(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained for one epoch on 5% of PneumoniaMNIST, through the CLI."""
    import yaml

    root = tmp_path_factory.mktemp("cli")
    config = {
        "name": "cli",
        "output_dir": str(root / "runs"),
        "data": {"format": "medmnist", "path": str(pneumonia_npz), "train_fraction_used": 0.05},
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 32},
        "evaluate": {"n_bootstrap": 20},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _medlens("train", str(root / "c.yaml"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = root / "runs" / "cli"
    assert (run / "report.html").is_file()
    return run


def test_train_predict_evaluate_on_real_pneumoniamnist(
    cli_run: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    import numpy as np
    import pandas as pd
    from PIL import Image as PILImage

    run = cli_run

    # The same test images as PNG files must get the probabilities the run recorded.
    test_images = np.load(pneumonia_npz)["test_images"][:3]
    for k, image in enumerate(test_images):
        PILImage.fromarray(image).save(tmp_path / f"case{k}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    pngs = [str(tmp_path / f"case{k}.png") for k in range(3)]
    proc = _medlens(
        "predict", str(run), *pngs, str(tmp_path / "broken.png"), "--out", str(tmp_path / "p.csv")
    )
    assert proc.returncode == 2 and "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    proc = _medlens(
        "predict",
        str(run),
        *pngs,
        str(tmp_path / "broken.png"),
        "--out",
        str(tmp_path / "p.csv"),
        "--skip-bad",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_csv(tmp_path / "p.csv")
    assert len(out) == 4 and out["error"].fillna("").astype(bool).sum() == 1
    recorded = pd.read_csv(run / "predictions.csv")
    recorded = recorded[recorded["split"] == "test"].set_index("case_id")
    prob_columns = [c for c in out.columns if c.startswith("prob_")]
    for k in range(3):
        row = out[out["case_id"] == pngs[k]].iloc[0]
        ref = recorded.loc[f"test/{k:06d}"]
        assert row[prob_columns[1]] == pytest.approx(ref[prob_columns[1]], abs=1e-5)

    proc = _medlens("evaluate", str(run), "--out", str(tmp_path / "ev"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Re-evaluating the run's own test split at its own threshold reproduces its numbers.
    import json

    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    original = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    assert again["n"] == original["n"] == 624
    for name in ("auc", "accuracy", "sensitivity", "specificity"):
        assert again["metrics"][name]["value"] == pytest.approx(original["metrics"][name]["value"])
    proc = _medlens("evaluate", str(run), "--data", str(pneumonia_npz), "--format", "xls")
    assert proc.returncode == 2 and "--format" in proc.stderr


def _write_secondary_capture(pixels, path: Path) -> None:
    """A minimal, valid DICOM Secondary Capture holding ``pixels`` (uint8, 2D)."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PatientID = "OT", "anon"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_predict_reads_dicom_and_npz_and_refuses_wrong_shapes(
    cli_run: Path, pneumonia_npz: Path, ct_dir: Path, tmp_path: Path
) -> None:
    import nibabel as nib
    import numpy as np
    import pandas as pd
    from PIL import Image as PILImage

    data = np.load(pneumonia_npz)
    image = data["test_images"][0]
    _write_secondary_capture(image, tmp_path / "xray.dcm")
    PILImage.fromarray(image).save(tmp_path / "xray.png")
    small_npz = tmp_path / "few.npz"
    np.savez(
        small_npz,
        **{
            f"{s}_{k}": data[f"{s}_{k}"][:4]
            for s in ("train", "val", "test")
            for k in ("images", "labels")
        },
    )

    dcm, png = str(tmp_path / "xray.dcm"), str(tmp_path / "xray.png")
    proc = _medlens(
        "predict", str(cli_run), dcm, png, str(small_npz), "--out", str(tmp_path / "p.csv")
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_csv(tmp_path / "p.csv").set_index("case_id")
    assert len(out) == 2 + 12 and out.index.str.startswith("few.npz#").sum() == 12
    # The same pixels as DICOM, PNG and inside the .npz get the same probabilities.
    assert out.loc[dcm, "prob_pneumonia"] == pytest.approx(out.loc[png, "prob_pneumonia"], abs=1e-6)
    assert out.loc[dcm, "prob_pneumonia"] == pytest.approx(
        out.loc["few.npz#test/000000", "prob_pneumonia"], abs=1e-6
    )

    # A 512 x 512 CT slice and a volume are not what this 28 px model was trained on.
    nib.save(
        nib.Nifti1Image(image.astype(np.float32)[:, :, None], np.eye(4)), tmp_path / "volume.nii.gz"
    )
    for bad in (str(sorted(ct_dir.glob("*.dcm"))[0]), str(tmp_path / "volume.nii.gz")):
        proc = _medlens("predict", str(cli_run), bad, "--out", str(tmp_path / "q.csv"))
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert Path(bad).name in proc.stderr and "trained on" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "q.csv").exists()


def test_anonymize_real_ct_and_seg(shared_data: Path, tmp_path: Path) -> None:
    import os

    import pydicom

    source = shared_data / "dicom_ct_liver_seg"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in [*sorted((source / "ct").glob("*.dcm")), source / "seg" / "liver.dcm"]:
        (inputs / path.name).write_bytes(path.read_bytes())
    (inputs / "cut.dcm").write_bytes((source / "ct" / "01.dcm").read_bytes()[:2000])
    env_key = {"MEDLENS_DEID_KEY": "a-test-key-of-32-bytes-0123456789"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medlens.cli",
            "anonymize",
            str(inputs),
            str(tmp_path / "out"),
            "--blank",
            "0:10,0:10@CT",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env_key},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused" in proc.stdout
    outputs = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(outputs) == 4
    original = pydicom.dcmread(source / "ct" / "01.dcm")
    for path in outputs:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientID != original.PatientID
        assert original.StudyInstanceUID.encode() not in path.read_bytes()
    import csv

    log_path = tmp_path / "out" / "deidentification_log.csv"
    rows = list(csv.DictReader(log_path.open()))
    assert sorted(r["status"] for r in rows).count("refused") == 1 and len(rows) == 5
    assert str(original.PatientID) not in log_path.read_text()

    proc = _medlens("anonymize", str(inputs), str(tmp_path / "out2"), "--blank", "oops")
    assert proc.returncode == 2 and "--blank" in proc.stderr
