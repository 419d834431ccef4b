"""Bad pipeline configs fail before any network trains, with one line naming the stage, and
leave no run folder behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlens.cli import app


def _train(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["train", str(config), "--quiet"])
    return result.exit_code, result.output


@pytest.fixture()
def base(cells_dir: Path, cells_data, tiny_four_phase, tmp_path: Path) -> dict:
    return tiny_four_phase(cells_data(cells_dir), tmp_path / "runs")


def _refused(write_config, config: dict, tmp_path: Path, message: str) -> None:
    code, output = _train(write_config(config))
    assert code == 2, output
    assert message in output
    assert len(output.strip().splitlines()) == 1
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "something was left behind"


def test_a_region_the_masks_lack(base: dict, write_config, tmp_path: Path) -> None:
    base["stages"][2]["regions"]["granules"] = ["granule"]
    _refused(
        write_config, base, tmp_path,
        "stages.features.regions.granules: the masks hold no region 'granule'; they hold "
        "cytoplasm, nucleus",
    )  # fmt: skip


def test_a_segment_stage_whose_run_is_for_another_task(
    base: dict, write_config, tmp_path: Path
) -> None:
    base["stages"][0]["run"] = {**base["stages"][0]["run"], "model": {"name": "resnet18"}}
    code, output = _train(write_config(base))
    assert code == 2 and output.startswith("error: stages.segment.run.")
    assert "resnet18" in output and len(output.strip().splitlines()) == 1


def test_a_classifier_stage_with_a_segmenter(
    cells_dir: Path, cells_data, tiny_runs, write_config, tmp_path: Path
) -> None:
    config = {
        "kind": "pipeline", "name": "cnn", "output_dir": str(tmp_path / "runs"),
        "data": cells_data(cells_dir),
        "stages": [{"name": "classify", "kind": "classify",
                    "run": {**tiny_runs["cnn"], "model": {"name": "unet"}}}],
    }  # fmt: skip
    code, output = _train(write_config(config))
    assert code == 2 and output.startswith("error: stages.classify.run.") and "unet" in output


def test_keys_the_pipeline_sets_and_estimators_on_images(
    base: dict, write_config, tmp_path: Path
) -> None:
    base["stages"][0]["run"] = {**base["stages"][0]["run"], "data": {"path": "x"}}
    _refused(write_config, base, tmp_path, "stages.segment.run.data: is set by the pipeline")
    base["stages"][0]["run"].pop("data")
    base["stages"][3]["run"] = {"model": {"name": "small_cnn"}}
    _refused(
        write_config,
        base,
        tmp_path,
        "stages.classify.run: a features stage is classified by an estimator",
    )


def test_mismatched_label_maps_name_the_mask(base: dict, write_config, tmp_path: Path) -> None:
    base["data"]["mask_values"] = {"cytoplasm": 100, "nucleus": 255}
    _refused(write_config, base, tmp_path, "_mask.png: reference mask: holds grey levels 128")


def test_cv_runs_every_outer_fold_and_pools_them(
    cells_dir: Path, cells_data, write_config, tmp_path: Path
) -> None:
    """``medlens cv`` on a pipeline with reference masks (no network to train)."""
    import json

    config = {
        "kind": "pipeline", "name": "gt", "output_dir": str(tmp_path / "runs"), "n_bootstrap": 10,
        "examples": 1, "data": cells_data(cells_dir),
        "stages": [
            {"name": "segment", "kind": "segment", "source": "ground_truth"},
            {"name": "features", "kind": "features", "masks": "segment",
             "regions": {"nucleus": ["nucleus"]},
             "handcrafted": {"families": ["shape"], "channels": [0], "bins": 8}},
            {"name": "classify", "kind": "classify", "input": "features",
             "estimator": {"name": "logistic_regression"}},
        ],
    }  # fmt: skip
    result = CliRunner().invoke(app, ["cv", str(write_config(config)), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "runs" / "gt-cv2"
    summary = json.loads((out / "cv_summary.json").read_text())
    assert summary["folds"] == 2 and summary["pooled"]["n"] == 8  # every case tested once
    # nucleus size separates the synthetic classes: the reference masks classify them all
    assert summary["pooled"]["balanced_accuracy"]["value"] == 1.0
    metrics = json.loads((out / "fold_1" / "metrics.json").read_text())
    assert metrics["masks_used"].startswith("reference (ground truth) masks")
    assert "with_reference_masks" not in metrics


def test_an_existing_run_of_another_task_or_other_labels(
    base: dict, write_config, tmp_path: Path, pneumonia_run: Path, drive_run: Path
) -> None:
    base["stages"][0] = {"name": "segment", "kind": "segment", "from_run": str(pneumonia_run)}
    _refused(
        write_config, base, tmp_path,
        "config.yaml: stage 'segment': a classification run; a segment stage needs a "
        "segmentation run",
    )  # fmt: skip
    base["stages"][0]["from_run"] = str(drive_run)
    _refused(
        write_config, base, tmp_path,
        "labels.json: stage 'segment': the run's labels ['background', 'vessel'] are not the "
        "pipeline's ['background', 'cytoplasm', 'nucleus']",
    )  # fmt: skip
    base["stages"][0]["run"] = {"model": {"name": "unet"}}
    _refused(write_config, base, tmp_path, "from_run (a finished run folder) replaces run")
