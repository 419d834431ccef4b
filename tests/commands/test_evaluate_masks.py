"""``medlens evaluate --pred DIR --ref DIR`` on real DRIVE vessel masks and a real MNI mask."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage
from scipy import ndimage
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.evaluate_masks import case_key, evaluate_mask_folders, pair_mask_files
from medlens.errors import InputError
from medlens.metrics import evaluate_segmentation

CASES = ("01", "02", "03")


def _drive_masks(shared_data: Path, tmp_path: Path) -> tuple[Path, Path, Path, dict]:
    """Reference = the real manual masks; prediction = each eroded a different amount."""
    test = shared_data / "drive_retina_vessels" / "test"
    ref_dir, pred_dir, fov_dir = tmp_path / "ref", tmp_path / "pred", tmp_path / "fov"
    for d in (ref_dir, pred_dir, fov_dir):
        d.mkdir()
    arrays = {}
    for k, number in enumerate(CASES):
        ref = np.asarray(PILImage.open(test / "1st_manual" / f"{number}_manual1.gif")) > 127
        fov = np.asarray(PILImage.open(test / "mask" / f"{number}_test_mask.gif")) > 127
        pred = ndimage.binary_dilation(ref, iterations=k + 1) if k else ndimage.binary_erosion(ref)
        PILImage.fromarray((ref * 255).astype(np.uint8)).save(ref_dir / f"{number}.png")
        PILImage.fromarray((pred * 255).astype(np.uint8)).save(pred_dir / f"{number}.png")
        PILImage.fromarray((fov * 255).astype(np.uint8)).save(fov_dir / f"{number}.png")
        arrays[number] = (pred, ref, fov)
    return pred_dir, ref_dir, fov_dir, arrays


def test_every_case_matches_evaluate_segmentation_and_the_summary_counts(shared_data, tmp_path):
    pred_dir, ref_dir, fov_dir, arrays = _drive_masks(shared_data, tmp_path)
    out = tmp_path / "out"
    summary = evaluate_mask_folders(pred_dir, ref_dir, out, fov_dir=fov_dir, progress=False)

    table = pd.read_csv(out / "metrics.csv", dtype={"case": str})
    assert sorted(table["case"]) == list(CASES)
    for number, (pred, ref, fov) in arrays.items():
        expected = evaluate_segmentation(pred, ref, None, fov_mask=fov)[1]
        row = table[table["case"] == number].iloc[0]
        for metric in ("dice", "jaccard", "hausdorff_distance_95", "normalized_surface_dice"):
            assert row[metric] == pytest.approx(expected[metric], rel=1e-9)
    dices = table["dice"].to_numpy()
    assert summary["classes"]["1"]["dice"]["mean"] == pytest.approx(dices.mean())
    assert summary["distance_unit"] == "px"  # PNGs carry no spacing
    assert summary["spacing_source"] == "assumed"
    assert set(table["distance_unit"]) == {"px"}
    written = json.loads((out / "metrics.json").read_text())
    assert written["n_cases"] == 3
    assert "dice" in (out / "summary.txt").read_text()


def test_spacing_option_scales_distances_but_not_overlap(shared_data, tmp_path):
    pred_dir, ref_dir, _, _ = _drive_masks(shared_data, tmp_path)
    plain = evaluate_mask_folders(pred_dir, ref_dir, tmp_path / "a", progress=False)
    scaled = evaluate_mask_folders(pred_dir, ref_dir, tmp_path / "b", spacing=[0.5], progress=False)
    a, b = plain["classes"]["1"], scaled["classes"]["1"]
    assert b["dice"]["mean"] == pytest.approx(a["dice"]["mean"])
    assert b["hausdorff_distance"]["mean"] == pytest.approx(0.5 * a["hausdorff_distance"]["mean"])
    assert scaled["distance_unit"] == "mm"
    assert scaled["spacing_source"] == "--spacing" and scaled["spacing_mm"] == [0.5]
    text = (tmp_path / "b" / "summary.txt").read_text()
    assert text.startswith("3 cases; distances in mm (spacing 0.5 mm per axis, from --spacing)")
    assert "normalised surface Dice tolerance: 1 mm" in text


def test_nifti_masks_use_their_header_spacing(tmp_path):
    from nilearn.datasets import load_mni152_gm_mask

    gm = load_mni152_gm_mask(resolution=2)
    ref = np.asarray(gm.dataobj).astype(np.uint8)
    pred = ndimage.binary_erosion(ref).astype(np.uint8)
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(ref, gm.affine), tmp_path / "ref" / "mni.nii.gz")
    nib.save(nib.Nifti1Image(pred, gm.affine), tmp_path / "pred" / "mni.nii.gz")
    summary = evaluate_mask_folders(
        tmp_path / "pred", tmp_path / "ref", tmp_path / "o", progress=False
    )
    expected = evaluate_segmentation(pred, ref, (2.0, 2.0, 2.0))[1]
    got = summary["classes"]["1"]
    assert summary["distance_unit"] == "mm"
    assert got["hausdorff_distance_95"]["mean"] == pytest.approx(expected["hausdorff_distance_95"])
    assert got["dice"]["mean"] == pytest.approx(expected["dice"])


def test_a_mask_without_partner_is_named(shared_data, tmp_path):
    pred_dir, ref_dir, _, _ = _drive_masks(shared_data, tmp_path)
    (pred_dir / "02.png").unlink()
    with pytest.raises(InputError, match="no mask for 1 case.*02"):
        pair_mask_files(pred_dir, ref_dir)


def test_case_key_strips_double_suffixes():
    assert case_key(Path("liver_003.nii.gz")) == "liver_003"
    assert case_key(Path("a.b.png")) == "a.b"


def test_cli_evaluates_two_folders_and_refuses_half_the_options(shared_data, tmp_path):
    pred_dir, ref_dir, fov_dir, _ = _drive_masks(shared_data, tmp_path)
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--pred",
            str(pred_dir),
            "--ref",
            str(ref_dir),
            "--fov",
            str(fov_dir),
            "--spacing",
            "0.02",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 cases; distances in mm (spacing 0.02 mm per axis, from --spacing)" in result.output
    assert (out / "metrics.csv").is_file()
    half = runner.invoke(app, ["evaluate", "--pred", str(pred_dir)])
    assert half.exit_code == 2
    assert "--ref" in half.output


def _square(size: int, lo: int, hi: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


def test_png_masks_are_measured_in_px_and_say_so(tmp_path):
    """PNG masks carry no spacing: the summary says px (1 px per axis assumed), not voxels."""
    for folder, hi in (("ref", 20), ("pred", 23)):
        (tmp_path / folder).mkdir()
        PILImage.fromarray(_square(32, 8, hi) * 255).save(tmp_path / folder / "a.png")
    summary = evaluate_mask_folders(
        tmp_path / "pred", tmp_path / "ref", tmp_path / "out", progress=False
    )
    assert summary["distance_unit"] == "px"
    assert summary["classes"]["1"]["hausdorff_distance"]["mean"] == pytest.approx(3 * 2**0.5)
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert text.startswith("1 cases; distances in px (the masks carry no spacing, so 1 px per")
    assert "normalised surface Dice tolerance: 1 px" in text
    assert "voxels" not in text


def test_png_and_nifti_masks_together_are_marked_mixed(tmp_path):
    for folder, hi in (("ref", 20), ("pred", 23)):
        (tmp_path / folder).mkdir()
        PILImage.fromarray(_square(32, 8, hi) * 255).save(tmp_path / folder / "a.png")
        affine = np.diag([0.5, 0.5, 1.0, 1.0])
        nib.save(
            nib.Nifti1Image(_square(32, 8, hi)[..., None], affine), tmp_path / folder / "b.nii"
        )
    summary = evaluate_mask_folders(
        tmp_path / "pred", tmp_path / "ref", tmp_path / "out", progress=False
    )
    assert summary["distance_unit"] == "mixed" and summary["cases_in_px"] == ["a"]
    table = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert dict(zip(table["case"], table["distance_unit"], strict=True)) == {"a": "px", "b": "mm"}
    assert (
        "in px for 1 whose masks carry no spacing" in (tmp_path / "out" / "summary.txt").read_text()
    )
