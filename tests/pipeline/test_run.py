"""A tiny pipeline end to end through the CLI on real WBC images: train (segment -> crop ->
handcrafted + deep features -> classifier), evaluate, predict; and the proof that no network
made the mask of a case whose reference mask it trained on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medlens.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(wbc_subset: Path, wbc_section, tiny_four_phase, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline-runs")
    config = out / "pipeline.yaml"
    config.write_text(yaml.safe_dump(tiny_four_phase(wbc_section(wbc_subset, folds=2), out)))
    result = CliRunner().invoke(app, ["train", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    return out / "tiny"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_training_writes_every_stage_and_scores_the_test_fold(trained: Path) -> None:
    assert not trained.with_name("tiny.partial").exists()
    rows = _rows(trained / "predictions.csv")
    assert len(rows) == 8  # fold 0 of 2 over 16 images
    assert {r["truth"] for r in rows} == {"neutrophil", "lymphocyte"}
    for row in rows:
        probs = [float(row[f"p_{n}"]) for n in ("neutrophil", "lymphocyte")]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["predicted"] == ("neutrophil", "lymphocyte")[probs.index(max(probs))]
        assert (trained / row["masks"]).is_file()
    masks = list((trained / "stages" / "segment" / "masks").glob("*.png"))
    assert len(masks) == 16  # cross-fitted training masks and test masks, on the image grid
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["masks_used"].startswith("predicted masks (cross-fitted")
    c = metrics["classification"]
    assert c["n"] == 8 and 0 <= c["balanced_accuracy"]["value"] <= 1
    assert c["balanced_accuracy"]["ci_low"] <= c["balanced_accuracy"]["ci_high"]
    assert sum(map(sum, c["confusion"])) == 8
    assert set(metrics["segmentation"]["segment"]) == {"cytoplasm", "nucleus", "cell"}
    assert sum(metrics["error_sources"].values()) == 8
    report = (trained / "report.html").read_text()
    for text in ("predicted masks (cross-fitted", "Where the errors come from", "<img", "Dice"):
        assert text in report
    assert (trained / "excluded.csv").is_file()


def test_no_network_made_the_mask_of_a_case_it_trained_on(trained: Path) -> None:
    """Read what each cross-fit U-Net was actually given (its train/ and val/ masks) and
    what it predicted (its test/ split): disjoint, and together every training case once."""
    stage = trained / "stages" / "segment"
    test_cases = {r["case_id"] for r in _rows(trained / "predictions.csv")}
    record = json.loads((stage / "crossfit.json").read_text())
    predicted_by: dict[str, int] = {}
    for j, network in enumerate(record["networks"]):
        data = stage / "data" / f"crossfit{j}"
        seen = {p.stem for split in ("train", "val") for p in (data / split / "masks").iterdir()}
        made = {p.stem for p in (data / "test" / "masks").iterdir()}
        assert seen and made
        assert not seen & made, f"network {j} predicted cases it trained on"
        assert not seen & test_cases, f"network {j} trained on test cases"
        assert made == set(network["predicted"]) and seen == set(network["trained_on"])
        for case in made:
            assert case not in predicted_by
            predicted_by[case] = j
    all_cases = {p.stem for p in (stage / "masks").iterdir()}
    assert set(predicted_by) == all_cases - test_cases  # every training case, exactly once


def test_evaluate_prints_the_run_figures(trained: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(trained)])
    assert result.exit_code == 0, result.output
    assert "balanced_accuracy" in result.output and "segment Dice nucleus" in result.output
    assert "with reference masks" in result.output


def test_predict_applies_every_stage_to_new_images(
    trained: Path, wbc_subset: Path, tmp_path: Path
) -> None:
    images = sorted((wbc_subset / "Dataset 1").glob("*.bmp"))[:2]
    before = sorted(p.name for p in (trained / "stages" / "segment" / "masks").iterdir())
    out = tmp_path / "pred"
    result = CliRunner().invoke(
        app, ["predict", str(trained), *map(str, images), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = _rows(out / "predictions.csv")
    assert [r["case_id"] for r in rows] == [p.stem for p in images]
    assert all(r["predicted"] in ("neutrophil", "lymphocyte") for r in rows)
    assert len(list((out / "stages" / "segment" / "masks").glob("*.png"))) == 2
    after = sorted(p.name for p in (trained / "stages" / "segment" / "masks").iterdir())
    assert before == after  # the run folder is not written to

    refused = CliRunner().invoke(
        app, ["predict", str(trained), str(images[0]), "--batch-size", "4"]
    )
    assert (
        refused.exit_code == 2
        and "--batch-size: does not apply to a pipeline run" in refused.output
    )


def test_an_existing_segmenter_is_used_as_it_is_and_said_so(
    trained: Path, wbc_subset: Path, wbc_section, tiny_four_phase, tmp_path: Path
) -> None:
    segmenter = trained / "stages" / "segment" / "crossfit0"  # an ordinary segmentation run
    config = tiny_four_phase(wbc_section(wbc_subset, folds=2), tmp_path, name="reuse")
    config["stages"][0] = {"name": "segment", "kind": "segment", "from_run": str(segmenter)}
    path = tmp_path / "reuse.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "reuse" / "metrics.json").read_text())
    assert metrics["masks_used"].startswith("predicted by an existing run")
    assert metrics["masks_used"].endswith("not cross-fitted")
    record = json.loads((tmp_path / "reuse" / "stages" / "segment" / "crossfit.json").read_text())
    assert record["networks"][0]["trained_on"] is None
    assert not (tmp_path / "reuse" / "stages" / "segment" / "data").exists()  # nothing trained
