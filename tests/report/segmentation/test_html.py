"""report.html and model_card.md of a segmentation run folder, built from real DRIVE images
whose predicted masks are the reference masks eroded or dilated (so every Dice is known)."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image as PILImage
from scipy import ndimage

from medlens.data.masks import write_mask
from medlens.data.readers import read_image
from medlens.errors import InputError
from medlens.metrics import evaluate_segmentation, summarize
from medlens.report.segmentation.cases import RankedCase, pick_cases, rank_by_dice
from medlens.report.segmentation.html import (
    write_segmentation_model_card,
    write_segmentation_report,
)
from medlens.report.segmentation.overlays import (
    FALSE_NEGATIVE_COLOUR,
    FALSE_POSITIVE_COLOUR,
    PREDICTION_COLOUR,
    REFERENCE_COLOUR,
    plot_segmentation_overlay,
    slice_centre,
)

#: DRIVE test image -> how its "prediction" is made from the reference vessel mask.
TEST_CASES = {"01": ("dilate", 1), "02": ("erode", 1), "03": ("dilate", 3), "04": ("empty", 0)}
VAL_CASES = {"05": ("dilate", 2)}
TRAIN_CASES = 2


def _drive(shared_data: Path, number: str) -> tuple[object, np.ndarray, np.ndarray]:
    base = shared_data / "drive_retina_vessels" / "test"
    image = read_image(base / "images" / f"{number}_test.tif")
    vessels = read_image(base / "1st_manual" / f"{number}_manual1.gif").array[0] > 127
    fov = read_image(base / "mask" / f"{number}_test_mask.gif").array[0] > 127
    return image, vessels, fov


def _predict(reference: np.ndarray, how: str, steps: int) -> np.ndarray:
    if how == "dilate":
        return ndimage.binary_dilation(reference, iterations=steps)
    if how == "erode":
        return ndimage.binary_erosion(reference, iterations=steps)
    return np.zeros_like(reference)


def _dice_in_fov(pred: np.ndarray, ref: np.ndarray, fov: np.ndarray) -> float:
    """Independent Dice: 2|P∩R| / (|P| + |R|), counting pixels inside the field of view."""
    p, r = pred & fov, ref & fov
    return 2.0 * float((p & r).sum()) / float(p.sum() + r.sum())


def _build_run(root: Path, shared_data: Path) -> tuple[Path, dict[str, float]]:
    """A run folder as segmentation_run.py writes it; returns it and the test cases' Dice."""
    run = root / "drive-unet"
    rows, dice = [], {}
    for split, cases in (("test", TEST_CASES), ("val", VAL_CASES)):
        for number, (how, steps) in cases.items():
            image, ref, fov = _drive(shared_data, number)
            pred = _predict(ref, how, steps)
            result = evaluate_segmentation(
                pred.astype(np.uint8), ref.astype(np.uint8), image.spacing, labels=[1], fov_mask=fov
            )[1]
            case_id = f"test/{number}"
            rows.append(
                {"case_id": case_id, "split": split, "class": "vessel", "label": 1, **result}
            )
            if split == "test":
                dice[case_id] = _dice_in_fov(pred, ref, fov)
                mask = image.with_array(pred[None].astype(np.uint8))
                write_mask(mask, run / "masks" / f"test_{number}.png", reference=image)
    table = pd.DataFrame(rows)
    names = [
        c
        for c in table.columns
        if c not in ("case_id", "split", "class", "label", "pred_voxels", "ref_voxels")
    ]
    splits = {
        split: {"vessel": {m: summarize(g[m].to_numpy(float)) for m in names}}
        for split, g in table.groupby("split")
    }
    metrics = {
        "task": "segmentation",
        "class_names": ["background", "vessel"],
        "splits": splits,
        "best_epoch": 3,
        "epochs_run": 4,
        "planned_epochs": 6,
        "train_seconds": 75.0,
        "distance_unit": "mm",
    }
    # NaN is written as null, as write_json_atomic does.
    text = json.dumps(metrics, indent=2).replace("NaN", "null")
    (run / "metrics.json").write_text(text)
    table.to_csv(run / "segmentation_metrics.csv", index=False)
    config = {
        "name": "drive-unet",
        "task": "segmentation",
        "seed": 0,
        "data": {
            "format": "segmentation",
            "path": str(shared_data / "drive_retina_vessels"),
            "layout": "drive",
        },
        "model": {"name": "unet"},
        "segmentation": {
            "patch_size": [64, 64],
            "loss": "dice_ce",
            "overlap": 0.5,
            "tta_flip": False,
            "surface_tolerance_mm": 1.0,
            "save_masks": "png",
            "postprocess": {
                "threshold": 0.5,
                "keep_largest": None,
                "fill_holes": False,
                "min_size_mm": 0.0,
            },
        },
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "labels.json").write_text(
        json.dumps({"task": "segmentation", "class_names": ["background", "vessel"]})
    )
    (run / "data_summary.json").write_text(
        json.dumps(
            {
                "splits": {"train": {"n": TRAIN_CASES}, "val": {"n": 1}, "test": {"n": 4}},
                "source": config["data"]["path"],
            }
        )
    )
    (run / "preprocessing.json").write_text(
        json.dumps({"transforms": [{"name": "scale_intensity", "low": 0.0, "high": 1.0}]})
    )
    epochs = np.arange(1, 5)
    pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": 0.9 / epochs,
            "val_loss": 0.8 / epochs,
            "val_dice": 0.5 + 0.05 * epochs,
            "lr": 1e-3 * 0.5**epochs,
            "seconds": np.full(4, 18.75),
        }
    ).to_csv(run / "history.csv", index=False)
    return run, dice


class _Page(HTMLParser):
    """Collects images, headings, table rows (with the heading above them) and checks that
    every opened element is closed."""

    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[dict[str, str]] = []
        self.rows: list[tuple[str, list[str]]] = []  # (heading above the table, cells)
        self.heading = ""
        self._text: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if tag in ("h2", "h3", "td", "th"):
            self._text = []
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        text = " ".join("".join(self._text or []).split())
        if tag in ("h2", "h3"):
            self.heading = text
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(text)
        elif tag == "tr" and self._row is not None:
            self.rows.append((self.heading, self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    assert page.stack == [], f"unclosed elements {page.stack}"
    return page


def _png(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,")
    data = base64.b64decode(src.split(",", 1)[1])
    with PILImage.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def _has_colour(pixels: np.ndarray, colour: str, tolerance: int = 12) -> bool:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(pixels - rgb).max(axis=-1) <= tolerance).any())


@pytest.fixture(scope="module")
def drive_run(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> tuple[Path, dict[str, float]]:
    return _build_run(tmp_path_factory.mktemp("seg"), shared_data)


@pytest.fixture(scope="module")
def report(drive_run: tuple[Path, dict[str, float]]) -> tuple[str, _Page]:
    path = write_segmentation_report(drive_run[0])
    assert path == drive_run[0] / "report.html"
    html = path.read_text(encoding="utf-8")
    return html, _parse(html)


def _test_rows(page: _Page) -> dict[str, list[str]]:
    return {
        cells[0]: cells for heading, cells in page.rows if heading.startswith("Test split: vessel")
    }


def test_report_shows_the_metrics_json_values_and_nan_counts(drive_run, report) -> None:
    run, _ = drive_run
    _, page = report
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["test"]["vessel"]
    rows = _test_rows(page)
    dice = metrics["dice"]
    assert rows["Dice"][1] == f"{dice['mean']:.3f} \u00b1 {dice['std']:.3f}"
    assert rows["Dice"][2] == f"{dice['median']:.3f}"
    hd95 = metrics["hausdorff_distance_95"]
    # DRIVE's TIFF images carry no spacing: px, though this (older) metrics.json says mm
    label = "Hausdorff distance, 95th percentile (HD95), px"
    assert rows[label][2] == f"{hd95['median']:.2f}"
    # test/04's empty prediction: precision 0/0 is NaN and every distance is infinite.
    assert metrics["precision"]["n_nan"] == 1 and rows["Precision (PPV)"][5] == "1"
    assert hd95["n_inf"] == 1 and rows[label][6] == "1"
    assert rows[label][4] == "3 / 4"
    # the per-case table shows the infinite distance, not a blank
    case_rows = [
        cells
        for heading, cells in page.rows
        if heading.startswith("Per-case") and cells[0].startswith("test/04")
    ]
    assert case_rows and "\u221e" in case_rows[0]


def test_report_embeds_overlays_of_the_best_median_and_worst_cases(drive_run, report) -> None:
    _, dice = drive_run
    _, page = report
    overlays = {
        img["alt"].removeprefix("Overlay of "): img["src"]
        for img in page.images
        if img["alt"].startswith("Overlay of")
    }
    ranked = sorted(dice, key=lambda c: -dice[c])
    assert ranked[0] == "test/01" and ranked[-1] == "test/04"  # dilating by 1 px is closest
    # four cases: one best, one median, one worst
    assert set(overlays) == {ranked[0], ranked[1], ranked[-1]}
    html = report[0]
    best_at, median_at, worst_at = (
        html.index(f"<h3>{t} Dice</h3>") for t in ("Best", "Median", "Worst")
    )
    assert best_at < html.index(f'alt="Overlay of {ranked[0]}"') < median_at
    assert (
        median_at
        < html.index(f'alt="Overlay of {ranked[1]}"')
        < worst_at
        < html.index(f'alt="Overlay of {ranked[-1]}"')
    )
    # the contour overlay (two colours) and the false-positive/false-negative map are drawn
    best = _png(overlays[ranked[0]])
    assert _has_colour(best, REFERENCE_COLOUR, 30) and _has_colour(best, PREDICTION_COLOUR, 30)
    assert _has_colour(best, FALSE_POSITIVE_COLOUR)  # dilation adds pixels
    worst = _png(overlays[ranked[-1]])
    assert _has_colour(worst, FALSE_NEGATIVE_COLOUR)  # the empty prediction misses every vessel
    assert (drive_run[0] / "plots" / "overlay_best_test_01.png").is_file()
    # learning curves and the per-case spread are embedded too
    alts = {img["alt"] for img in page.images}
    assert "Learning curves" in alts and any(a.startswith("Per-case Dice and HD95") for a in alts)


def test_report_names_shown_cases_and_settings(report) -> None:
    html, page = report
    assert "best: test/01" in html and "worst: test/04 (0.000)" in html
    assert "64 \u00d7 64" in html and "dice_ce" in html and "4 of 6 planned (stopped early)" in html
    assert "inside the field of view only" in html  # DRIVE has FOV masks


def test_missing_data_folder_is_stated_and_the_rest_renders(drive_run, tmp_path: Path) -> None:
    run = tmp_path / "moved"
    shutil.copytree(drive_run[0], run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = str(tmp_path / "gone")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    html = write_segmentation_report(run).read_text(encoding="utf-8")
    page = _parse(html)
    assert (
        f"The data folder {tmp_path / 'gone'} is no longer available, so no overlays could be drawn."
        in html
    )
    assert not [i for i in page.images if i["alt"].startswith("Overlay of")]
    assert "Learning curves" in {i["alt"] for i in page.images}
    assert _test_rows(page)["Dice"][1] != "\u2014"
    card = write_segmentation_model_card(run).read_text(encoding="utf-8")
    assert "could not be checked" in card


def test_unsaved_masks_are_stated(drive_run, tmp_path: Path) -> None:
    run = tmp_path / "nomasks"
    shutil.copytree(drive_run[0], run)
    shutil.rmtree(run / "masks")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["segmentation"]["save_masks"] = "none"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    html = write_segmentation_report(run).read_text(encoding="utf-8")
    assert "Predicted masks were not saved (segmentation.save_masks: none)" in html
    _parse(html)


def test_model_card_has_the_tables_and_limitations(drive_run) -> None:
    run, _ = drive_run
    text = write_segmentation_model_card(run).read_text(encoding="utf-8")
    metrics = json.loads((run / "metrics.json").read_text())["splits"]
    assert "| Metric | Mean \u00b1 sd | Median | Range | Finite | NaN | \u221e |" in text
    assert "### Test: vessel (n = 4)" in text and "### Validation: vessel (n = 1)" in text
    dice = metrics["test"]["vessel"]["dice"]
    assert f"| Dice | {dice['mean']:.3f} \u00b1 {dice['std']:.3f} | {dice['median']:.3f} |" in text
    assert "| Precision (PPV) |" in text and "| 3 | 1 | 0 |" in text  # 3 finite, 1 NaN
    assert "| Training | 2 |" in text
    assert f"trained on {TRAIN_CASES} images" in text
    assert "inside the field of view only" in text
    assert "are in pixels (px), not mm" in text  # DRIVE TIFFs carry no spacing
    assert "distances in px (pixels" in text and "HD95), mm" not in text
    assert "- Surface Dice tolerance: 1.0 px." in text
    assert "## Intended use" in text and "Not a medical device" in text


def _moved_run(drive_run, tmp_path: Path, unit: str, **config_changes) -> Path:
    """A copy of the run whose data folder is gone (so only metrics.json tells the unit)."""
    run = tmp_path / f"moved-{unit}"
    shutil.copytree(drive_run[0], run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = str(tmp_path / "gone")
    config.update(config_changes)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["distance_unit"] = unit
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.mark.parametrize("unit", ["px", "mm"])
def test_distances_are_labelled_with_the_recorded_unit(drive_run, tmp_path: Path, unit) -> None:
    run = _moved_run(drive_run, tmp_path, unit)
    html = write_segmentation_report(run).read_text(encoding="utf-8")
    page = _parse(html)
    assert f"Hausdorff distance, 95th percentile (HD95), {unit}" in _test_rows(page)
    columns = next(cells for heading, cells in page.rows if heading.startswith("Per-case"))
    assert f"HD95 ({unit})" in columns and f"ASSD ({unit})" in columns
    assert f"<dt>Surface Dice tolerance</dt><dd>1.0 {unit}</dd>" in html
    other = "mm" if unit == "px" else "px"
    assert f"HD95), {other}" not in html and f"HD95 ({other})" not in html
    card = write_segmentation_model_card(run).read_text(encoding="utf-8")
    assert f"distances in {unit}" in card and f"(HD95), {unit} |" in card
    assert ("are in pixels (px), not mm" in card) == (unit == "px")


def test_segmentation_model_card_shows_names_as_text(drive_run, tmp_path: Path) -> None:
    run = _moved_run(drive_run, tmp_path, "px", name="seg`\n# Injected")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["name"] = "<img src=x onerror=alert(1)>"
    config["segmentation"]["loss"] = "[dice](javascript:alert(1))"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    summary = json.loads((run / "data_summary.json").read_text())
    summary["source"] = "/data/<b>drive</b>"
    (run / "data_summary.json").write_text(json.dumps(summary))
    card = write_segmentation_model_card(run).read_text(encoding="utf-8")
    markdown_it = pytest.importorskip("markdown_it")
    page = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(card)
    assert "<img" not in page and "<a " not in page and "<b>" not in page
    assert "<h1>Injected" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "[dice](javascript:alert(1))" in page


def test_bad_run_folder_raises_input_error(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"task": "classification"}))
    with pytest.raises(InputError, match="not 'segmentation'"):
        write_segmentation_report(tmp_path)
    with pytest.raises(InputError, match="run folder not found"):
        write_segmentation_model_card(tmp_path / "nowhere")


def test_rank_and_pick_cases_by_dice() -> None:
    per_case = pd.DataFrame(
        {
            "case_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "split": ["test"] * 8,
            "class": ["liver", "tumour"] * 4,
            "dice": [0.9, 0.7, 0.5, np.nan, 0.95, 0.95, np.nan, np.nan],
        }
    )
    ranked, unranked = rank_by_dice(per_case)
    assert [(r.case_id, round(r.dice, 3)) for r in ranked] == [("c", 0.95), ("a", 0.8), ("b", 0.5)]
    assert unranked == ["d"]
    picked = pick_cases([RankedCase(str(i), 1 - i / 20) for i in range(20)])
    assert [r.case_id for r in picked["best"]] == ["0", "1", "2"]
    assert [r.case_id for r in picked["worst"]] == ["17", "18", "19"]
    assert [r.case_id for r in picked["median"]] == ["8", "9", "10"]
    two = pick_cases(ranked[:2])
    assert [r.case_id for r in two["best"]] == ["c"] and [r.case_id for r in two["worst"]] == ["a"]
    assert two["median"] == []


def test_volume_overlay_slices_through_the_reference_centre(
    adrenal_npz: Path, tmp_path: Path
) -> None:
    volume = np.load(adrenal_npz)["test_images"][0] > 127
    expected = tuple(int(round(c)) for c in np.argwhere(volume).mean(axis=0))
    assert slice_centre(volume.astype(np.uint8)) == expected
    assert slice_centre(np.zeros((6, 8, 10), np.uint8)) == (3, 4, 5)
    pred = np.roll(volume, 2, axis=2)
    path = plot_segmentation_overlay(
        volume[None].astype(np.float32),
        volume.astype(np.uint8),
        pred.astype(np.uint8),
        tmp_path / "o.png",
        (2.0, 1.0, 1.0),
        "adrenal",
    )
    with PILImage.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert _has_colour(pixels, FALSE_POSITIVE_COLOUR) and _has_colour(pixels, FALSE_NEGATIVE_COLOUR)
    with pytest.raises(InputError, match="one spatial grid"):
        plot_segmentation_overlay(volume[None], volume, pred[:-1], tmp_path / "bad.png")
