"""``medlens register`` end to end on real images (nilearn's MNI152 template, offline): 2D
PNG and 3D NIfTI, labels propagated, landmarks scored, every bad input one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.register import evaluate_registration, format_evaluation

from ..registration.mni import mni, write_nifti, write_png

FAST = [
    "--set",
    "levels=[2,1]",
    "--set",
    "linear_iterations=[40,20]",
    "--set",
    "deformable_iterations=[30,10]",
]


@pytest.fixture(scope="module")
def slice_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2D slice of the template (4 mm) and the same slice shifted by (3, -2) pixels, with
    grey-matter labels and landmarks (pixel units: the PNGs have no spacing)."""
    t1, grey, _ = mni()
    image = ndimage.zoom(t1[:, :, 45], 0.5, order=1)
    image = image / image.max()
    labels = (ndimage.zoom(grey[:, :, 45], 0.5, order=1) > 0.5).astype(np.uint8)
    shift = np.array([3.0, -2.0])
    root = tmp_path_factory.mktemp("slice")
    fixed_points = np.array([[20.0, 20.0], [30.0, 25.0], [25.0, 35.0]])
    np.savetxt(root / "fixed.csv", fixed_points, delimiter=",", header="row,col", comments="")
    np.savetxt(root / "moving.txt", fixed_points + shift)
    return {
        "fixed": write_png(root / "fixed.png", image),
        "moving": write_png(root / "moving.png", ndimage.shift(image, shift, order=1)),
        "moving_labels": write_png(
            root / "moving_gm.png", ndimage.shift(labels, shift, order=0), 1
        ),
        "fixed_labels": write_png(root / "fixed_gm.png", labels, 1),
        "fixed_points": root / "fixed.csv",
        "moving_points": root / "moving.txt",
    }


def _run(*args: str) -> object:
    return CliRunner().invoke(app, ["register", *map(str, args)])


def test_a_2d_pair_end_to_end(slice_pair: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        slice_pair["fixed"],
        slice_pair["moving"],
        "--out",
        out,
        "--moving-labels",
        slice_pair["moving_labels"],
        "--fixed-labels",
        slice_pair["fixed_labels"],
        "--fixed-landmarks",
        slice_pair["fixed_points"],
        "--moving-landmarks",
        slice_pair["moving_points"],
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert "TRE median" in result.output
    for name in (
        "warped.nii.gz",
        "warped.png",
        "warped_labels.nii.gz",
        "warped_labels.png",
        "displacement.nii.gz",
        "jacobian.nii.gz",
        "transform.json",
        "metrics.json",
        "report.html",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tre_before_mm"]["median"] > 3.0 and metrics["tre_mm"]["median"] < 0.6
    grey = metrics["propagated_labels"]["labels"]["1"]
    assert grey["dice"] > 0.85 > grey["dice_before"]
    assert metrics["folded_pct"] == 0.0 and metrics["ncc_after"] > metrics["ncc_before"]
    field = nib.load(out / "displacement.nii.gz")
    assert (
        field.shape == (50, 58, 1, 1, 2) and field.header.get_intent()[0] == "displacement vector"
    )
    assert "checkerboard" in (out / "report.html").read_text()
    assert not (tmp_path / "out.partial").exists()

    again = evaluate_registration(
        out, slice_pair["fixed_points"], slice_pair["moving_points"], slice_pair["fixed_labels"]
    )
    assert again["tre_mm"]["median"] == pytest.approx(metrics["tre_mm"]["median"], abs=1e-4)
    assert again["propagated_labels"]["labels"]["1"]["dice"] == pytest.approx(grey["dice"])
    text = format_evaluation(again, out)
    assert "TRE (3 landmarks)" in text and "label 1: Dice" in text and "folded voxels" in text
    scored = CliRunner().invoke(
        app,
        ["evaluate", "--registration", str(out),
         "--fixed-landmarks", str(slice_pair["fixed_points"]),
         "--moving-landmarks", str(slice_pair["moving_points"]),
         "--fixed-labels", str(slice_pair["fixed_labels"])],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert "TRE (3 landmarks)" in scored.output
    mixed = CliRunner().invoke(app, ["evaluate", "--registration", str(out), "--pred", str(out)])
    assert mixed.exit_code == 2 and "registration folder alone" in mixed.output


def test_a_3d_nifti_pair_keeps_its_affine(tmp_path: Path) -> None:
    t1, _, affine = mni()
    volume = ndimage.zoom(t1, 1 / 3, order=1).astype(np.float32)
    scaled = affine.copy()
    scaled[:3, :3] *= 3
    fixed = write_nifti(tmp_path / "fixed.nii.gz", volume, scaled)
    moving = write_nifti(tmp_path / "moving.nii.gz", ndimage.shift(volume, (1, -1, 0.5)), scaled)
    out = tmp_path / "out3d"
    result = _run(fixed, moving, "--out", out, "--diffeomorphic", *FAST)
    assert result.exit_code == 0, result.output
    field = nib.load(out / "displacement.nii.gz")
    assert field.shape == (*volume.shape, 1, 3)
    np.testing.assert_allclose(field.affine, scaled)
    chain = json.loads((out / "transform.json").read_text())
    assert [s["kind"] for s in chain["stages"]] == ["initial", "rigid", "affine", "deformable"]
    assert chain["stages"][-1]["diffeomorphic"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ncc_after"] > metrics["ncc_before"] and metrics["folded_pct"] < 0.1
    # the existing folder is refused without --overwrite
    again = _run(fixed, moving, "--out", out, *FAST)
    assert again.exit_code == 2 and "already exists" in again.output


def _error_line(result: object) -> str:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_images_of_different_dimensionality_are_refused(slice_pair, tmp_path: Path) -> None:
    volume = write_nifti(
        tmp_path / "v.nii.gz", np.random.rand(8, 9, 10).astype(np.float32), np.eye(4)
    )
    line = _error_line(_run(slice_pair["fixed"], volume, "--out", tmp_path / "o"))
    assert str(volume) in line and "3D" in line and "2D" in line


def test_non_finite_intensities_are_refused(tmp_path: Path) -> None:
    good = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    bad = good.copy()
    bad[2, 3, 4] = np.nan
    fixed = write_nifti(tmp_path / "f.nii.gz", good, np.eye(4))
    moving = write_nifti(tmp_path / "m.nii.gz", bad, np.eye(4))
    line = _error_line(_run(fixed, moving, "--out", tmp_path / "o"))
    assert str(moving) in line and "NaN or infinite" in line


def test_no_overlap_after_the_initial_alignment_is_refused(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((10, 11, 12)).astype(np.float32)
    far = np.eye(4)
    far[:3, 3] = 500.0  # 500 mm away in the scanner
    fixed = write_nifti(tmp_path / "f.nii.gz", data, np.eye(4))
    moving = write_nifti(tmp_path / "m.nii.gz", data, far)
    line = _error_line(_run(fixed, moving, "--out", tmp_path / "o", "--init", "geometry"))
    assert str(moving) in line and "does not overlap" in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_labels_off_the_moving_grid_are_refused(slice_pair, tmp_path: Path) -> None:
    labels = write_png(tmp_path / "small.png", np.zeros((20, 20)), 1)
    line = _error_line(
        _run(
            slice_pair["fixed"],
            slice_pair["moving"],
            "--out",
            tmp_path / "o",
            "--moving-labels",
            labels,
        )
    )
    assert str(labels) in line and "not on the grid of the moving image" in line


def test_a_bad_setting_names_its_key(slice_pair, tmp_path: Path) -> None:
    line = _error_line(
        _run(slice_pair["fixed"], slice_pair["moving"], "--out", tmp_path / "o", "--loss", "cc")
    )
    assert "registration.loss" in line
