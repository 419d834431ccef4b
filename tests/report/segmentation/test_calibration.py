"""The calibration part of a segmentation run's report.html and model_card.md: the voxel
temperature, what it was fitted on, and the voxel ECE and Brier before and after, equal to
metrics.json's ``trust.calibration``."""

from __future__ import annotations

import html as html_text
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from medlens.report.segmentation.calibration import segmentation_calibration
from medlens.report.segmentation.html import (
    write_segmentation_model_card,
    write_segmentation_report,
)
from medlens.run_folder.segmentation import SegmentationRun

SPLITS = (("val", "Validation"), ("test", "Test"))


def _section(html: str) -> str | None:
    """The report's calibration section, or None."""
    found = re.search(r'<section id="calibration">(.*?)</section>', html, re.S)
    return html_text.unescape(found.group(1)) if found else None


def _html_rows(section: str) -> list[list[str]]:
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)
    ]


def _card_section(card: str) -> str | None:
    found = re.search(r"^## Calibration\n(.*?)(?=^## )", card, re.S | re.M)
    return found.group(1) if found else None


def _card_rows(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ")
    ]


def _expected(record: dict, stages: tuple[str, ...]) -> dict[str, list[str]]:
    """Split title -> the cells the table must show, from metrics.json at the shown precision."""
    rows = {}
    for split, title in SPLITS:
        values = record["splits"][split]
        cells = [title, f"{record['voxels'][split]:,}"]
        for measure in ("ece", "brier", "ece_top_label"):
            cells += [f"{values[f'{measure}_{stage}']:.4f}" for stage in stages]
        rows[title] = cells
    return rows


def _copy(run: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(run, tmp_path / name / run.name))


def test_report_and_card_show_the_voxel_temperature_and_its_ece_and_brier(drive_run: Path):
    record = json.loads((drive_run / "metrics.json").read_text())["trust"]["calibration"]
    assert record["method"] == "temperature"
    expected = _expected(record, ("before", "after"))
    header = ["Split", "Voxels", "ECE before", "ECE after", "Brier before", "Brier after"]
    header += ["Top-label ECE before", "Top-label ECE after"]
    temperature = f"T = {record['temperature']:.3f}"
    fitted = f"seeded sample (seed 0) of {record['voxels']['val']:,} validation voxels of 1 image"

    section = _section((drive_run / "report.html").read_text(encoding="utf-8"))
    assert section is not None
    rows = _html_rows(section)
    assert rows[0] == header
    assert {r[0]: r for r in rows[1:]} == expected
    assert '<td class="test">Test</td>' in section
    assert ("sharpens" if record["temperature"] < 1 else "softens") in section
    assert "flip-averaged" not in section  # the fixture predicts without flip TTA
    for text in (temperature, fitted, "inside each image's field of view", "15 equal-width bins"):
        assert text in section
    assert "Calibration changes no mask" in section and "medlens predict --uncertainty" in section
    assert "p(vessel)" in section and "from 0 to 1" in section

    card = _card_section((drive_run / "model_card.md").read_text(encoding="utf-8"))
    assert card is not None
    rows = _card_rows(card)
    assert rows[0] == header
    assert {r[0]: r for r in rows[1:]} == expected
    for text in (temperature, fitted, "15 equal-width bins", "Calibration changes no mask"):
        assert text in card


def test_a_run_with_calibration_off_says_so(drive_run: Path, tmp_path: Path):
    run = _copy(drive_run, tmp_path, "off")
    metrics = json.loads((run / "metrics.json").read_text())
    record = metrics["trust"]["calibration"]
    # what fit_voxel_calibration records for calibration.method: none
    record.pop("temperature")
    record["method"] = "none"
    for values in record["splits"].values():
        for key in [k for k in values if k.endswith("_before")]:
            values[key.replace("_before", "_after")] = values[key]
    (run / "metrics.json").write_text(json.dumps(metrics))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["calibration"]["method"] = "none"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    expected = _expected(record, ("before",))
    off = "Calibration is off (calibration.method: none)"

    section = _section(write_segmentation_report(run).read_text(encoding="utf-8"))
    assert section is not None and off in section
    rows = _html_rows(section)
    assert rows[0] == ["Split", "Voxels", "ECE", "Brier", "Top-label ECE"]
    assert {r[0]: r for r in rows[1:]} == expected
    assert "T =" not in section and "Calibration changes no mask" not in section

    card = _card_section(write_segmentation_model_card(run).read_text(encoding="utf-8"))
    assert card is not None and off in card
    assert {r[0]: r for r in _card_rows(card)[1:]} == expected


def test_a_run_from_before_calibration_renders_without_it(drive_run: Path, tmp_path: Path):
    run = _copy(drive_run, tmp_path, "old")
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["trust"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = write_segmentation_report(run).read_text(encoding="utf-8")
    assert _section(html) is None and "ECE" not in html and "Dice" in html
    card = write_segmentation_model_card(run).read_text(encoding="utf-8")
    assert "## Calibration" not in card and "ECE" not in card
    assert "## Metrics" in card and "## Limitations" in card and "\n\n\n" not in card


def test_several_classes_read_the_top_label_ece(tmp_path: Path):
    splits = {s: {"ece_before": 0.2, "ece_after": 0.1, "brier_before": 0.3, "brier_after": 0.25}
              for s in ("test", "val")}  # fmt: skip
    metrics = {
        "task": "segmentation",
        "class_names": ["background", "liver", "tumour"],
        "splits": {},
        "trust": {"calibration": {"method": "temperature", "temperature": 1.25, "splits": splits}},
    }
    config = {"seed": 7, "segmentation": {"tta_flip": True}}
    run = SegmentationRun(tmp_path, metrics, config, None, None, None)
    part = segmentation_calibration(run)
    assert part is not None and not part.off
    assert part.columns == [
        "Split",
        "Voxels",
        "ECE before",
        "ECE after",
        "Brier before",
        "Brier after",
    ]
    assert [r.split for r in part.rows] == ["Validation", "Test"]
    assert part.rows[1].cells == ["\u2014", "0.2000", "0.1000", "0.3000", "0.2500"]
    definitions = dict(part.definitions)
    assert "most probable class (top-label)" in definitions["ECE"]
    assert "from 0 to 2" in definitions["Brier score"] and "Top-label ECE" not in definitions
    assert "T = 1.250" in part.sentences[0] and "softens" in part.sentences[0]
    assert "flip-averaged probabilities" in part.sentences[1]
    assert "(seed 7)" in part.sentences[2]
    assert "inside the field of view where the data give one" in part.sentences[2]


@pytest.mark.parametrize("trust", [None, {}, {"calibration": "garbled"}])
def test_no_calibration_record_gives_no_part(tmp_path: Path, trust) -> None:
    metrics = {"task": "segmentation", "class_names": ["background", "vessel"], "splits": {}}
    if trust is not None:
        metrics["trust"] = trust
    assert (
        segmentation_calibration(SegmentationRun(tmp_path, metrics, {}, None, None, None)) is None
    )
