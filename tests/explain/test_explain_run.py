"""``explain_run``, the report gallery and the faithfulness report on a real run folder."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from medlens.data.medmnist import load_medmnist_npz
from medlens.errors import ConfigError, InputError
from medlens.explain import explain_run, explanation_gallery, faithfulness_report
from medlens.explain.run_cases import load_run_cases
from medlens.inference.classify import predict_files
from medlens.inference.loaded_run import load_run


@pytest.fixture
def png_folder(pneumonia_npz: Path, tmp_path: Path) -> Path:
    """Three real test radiographs written as 8-bit PNG files."""
    folder = tmp_path / "pngs"
    folder.mkdir()
    images = load_medmnist_npz(pneumonia_npz).images["test"][:3]
    for k, pixels in enumerate(images):
        PILImage.fromarray(pixels.astype(np.uint8)).save(folder / f"chest_{k}.png")
    return folder


def test_explain_run_writes_an_overlay_per_file_and_a_summary(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "explained"
    results = explain_run(pneumonia_run, [png_folder], method="saliency", out_dir=out)
    assert [Path(r.file).name for r in results] == ["chest_0.png", "chest_1.png", "chest_2.png"]
    summary = json.loads((out / "explanations.json").read_text())
    assert summary["method"] == "saliency" and len(summary["cases"]) == 3
    for result, entry in zip(results, summary["cases"], strict=True):
        assert matplotlib.image.imread(result.overlay).ndim == 3
        assert entry["overlay"] == result.overlay.name and (out / entry["overlay"]).is_file()
        assert result.heatmap.shape == (28, 28) and result.heatmap.max() == pytest.approx(1.0)
        assert result.target == result.predicted  # no target: the run's own decision
    # the same preprocessing as `medlens predict`: the same probabilities
    predict_files(pneumonia_run, [png_folder], tmp_path / "pred.csv")
    predicted = pd.read_csv(tmp_path / "pred.csv")
    names = load_run(pneumonia_run).class_names
    for result, (_, row) in zip(results, predicted.iterrows(), strict=True):
        for name in names:
            assert result.probabilities[name] == pytest.approx(row[f"prob_{name}"], abs=1e-6)
        assert result.predicted == row["pred"]


def test_a_class_name_sets_the_target(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path
) -> None:
    names = load_run(pneumonia_run).class_names
    results = explain_run(
        pneumonia_run, [png_folder / "chest_0.png"], "gradcam", tmp_path, names[0]
    )
    assert results[0].target == 0 and results[0].target_name == names[0]
    with pytest.raises(ConfigError, match="not a class of the run"):
        explain_run(pneumonia_run, [png_folder], "gradcam", tmp_path / "x", target="tumour")


@pytest.mark.parametrize("bad", ["corrupt", "wrong_size", "missing"])
def test_bad_input_file_raises_input_error_and_writes_nothing(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path, bad: str
) -> None:
    path = png_folder / "zz_bad.png"
    if bad == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n this is not the rest of a PNG")
    elif bad == "wrong_size":
        PILImage.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(path)
    inputs = [png_folder] if bad != "missing" else [png_folder / "chest_0.png", path]
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        explain_run(pneumonia_run, inputs, out_dir=out)
    assert info.value.path.endswith("zz_bad.png")
    assert not out.exists()


def test_gallery_shows_the_most_confident_hits_and_misses(
    pneumonia_run: Path, tmp_path: Path
) -> None:
    run = load_run(pneumonia_run)
    figures = explanation_gallery(pneumonia_run, tmp_path, method="gradcam", n_per_kind=2)
    predictions = pd.read_csv(pneumonia_run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    positive = f"prob_{run.class_names[1]}"
    expected = {
        "true_positive": test[(test.label == 1) & (test.pred == 1)].nlargest(2, positive),
        "false_positive": test[(test.label == 0) & (test.pred == 1)].nlargest(2, positive),
        "false_negative": test[(test.label == 1) & (test.pred == 0)].nsmallest(2, positive),
    }
    expected = {k: v for k, v in expected.items() if len(v)}
    assert [f.kind for f in figures] == list(expected)
    for figure in figures:
        assert list(figure.case_ids) == expected[figure.kind]["case_id"].tolist()
        assert figure.path.parent == tmp_path and figure.path.name.startswith("explain_gradcam_")
        assert matplotlib.image.imread(figure.path).shape[0] > 200  # two rows of panels


def test_faithfulness_report_explains_the_runs_decisions(pneumonia_run: Path) -> None:
    report = faithfulness_report(pneumonia_run, cases=3, methods=["gradcam", "saliency"], seed=1)
    assert len(report) == 6 and set(report["method"]) == {"gradcam", "saliency"}
    predictions = pd.read_csv(pneumonia_run / "predictions.csv").set_index("case_id")
    for _, row in report.iterrows():
        assert predictions.loc[row["case_id"], "split"] == "test"
        assert row["target"] == predictions.loc[row["case_id"], "pred"]
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1
    again = faithfulness_report(pneumonia_run, cases=3, methods=["gradcam", "saliency"], seed=1)
    pd.testing.assert_frame_equal(report, again)


def test_a_case_missing_from_the_runs_data_source_is_an_input_error(pneumonia_run: Path) -> None:
    run = load_run(pneumonia_run)
    assert load_run_cases(run, ["test/000000"])[0].shape == (1, 28, 28)
    with pytest.raises(InputError, match="test/999999"):
        load_run_cases(run, ["test/999999"])
