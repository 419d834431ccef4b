"""report.html of a GAN run, from a synthetic GAN run folder: rendered from
``report/templates/gan.html`` inside the shared frame, values as in quality.json."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

import medlens.report.gan
from medlens.report.gan import MAX_GRIDS, write_gan_report
from medlens.run_folder.checkpoint import save_checkpoint

TEMPLATES = Path(medlens.report.gan.__file__).parent / "templates"
DATA_URI = re.compile(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"')

QUALITY = {
    "fid": 12.3456,
    "fid_reference_val": 3.21,
    "c2st_auc": 0.8123,
    "c2st_auc_reference_val": None,
    "feature_dim": 64,
    "feature_model": "small_cnn",
    "feature_net_train_accuracy": 0.91,
    "n_real": 40,
    "n_synthetic": 40,
    "n_reference": 20,
    "epochs_run": 9,
    "planned_epochs": 300,
    "train_seconds": 90.0,
    "stopped_by_budget": True,
    "n_train_images": 78,
}
SPEC = {
    "image_size": 28, "channels": 1, "num_classes": 2, "latent_dim": 16, "spectral_norm": True,
}  # fmt: skip


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def gan_folder(root: Path, epochs: int, name: str = "pneumonia-gan") -> Path:
    """The files write_gan_report reads, as train_gan writes them."""
    run = root / name
    run.mkdir(parents=True)
    (run / "quality.json").write_text(json.dumps(QUALITY))
    (run / "config.yaml").write_text(yaml.safe_dump({"name": name, "epochs": 300}))
    save_checkpoint({"model": {}, "spec": SPEC, "class_names": ["a", "b"]}, run / "generator.pt")
    _png(run / "plots" / "curves.png", 10)
    for epoch in range(1, epochs + 1):
        _png(run / "plots" / f"samples_epoch_{epoch:03d}.png", epoch)
    return run


def test_the_page_comes_from_the_templates_folder_in_the_shared_frame(tmp_path: Path) -> None:
    assert (TEMPLATES / "gan.html").is_file()
    assert '{% extends "base.html" %}' in (TEMPLATES / "gan.html").read_text()
    assert "<html" not in inspect.getsource(medlens.report.gan)  # no inline template
    html = write_gan_report(gan_folder(tmp_path, 3)).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")  # base.html's frame and style
    assert (
        "<main>" in html and "--accent" in html and "<title>GAN run pneumonia-gan</title>" in html
    )


def test_the_page_shows_quality_settings_samples_and_config(tmp_path: Path) -> None:
    run = gan_folder(tmp_path, 3)
    path = write_gan_report(run)
    assert path == run / "report.html"
    html = path.read_text(encoding="utf-8")
    assert "<h1>GAN run <code>pneumonia-gan</code></h1>" in html
    for text in ("12.346", "3.210", "0.812", "n/a", "0.910", "small_cnn", "64-dimensional"):
        assert text in html, text
    assert "28 px, 1 channel(s), 2 classes, latent 16, spectral norm on" in html
    assert "trained 9 of\n" in html and "1.5 min" in html and "stopped by the time" in html
    assert "on 78 real images" in html and f"medlens {medlens.__version__}" in html
    # the last grid, the curves and the two earlier grids
    assert len(DATA_URI.findall(html)) == 4
    assert "plots/samples_epoch_003.png" in html and "plots/curves.png" in html
    assert "Samples during training" in html
    assert "<pre>epochs: 300\nname: pneumonia-gan\n</pre>" in html


def test_at_most_max_grids_earlier_grids_and_none_for_one_epoch(tmp_path: Path) -> None:
    html = write_gan_report(gan_folder(tmp_path, 20)).read_text(encoding="utf-8")
    assert len(DATA_URI.findall(html)) == 2 + MAX_GRIDS
    single = write_gan_report(gan_folder(tmp_path / "one", 1)).read_text(encoding="utf-8")
    assert len(DATA_URI.findall(single)) == 2 and "Samples during training" not in single


def test_names_are_escaped(tmp_path: Path) -> None:
    html = write_gan_report(gan_folder(tmp_path, 1, name="a<b>")).read_text(encoding="utf-8")
    assert "a&lt;b&gt;" in html and "a<b>" not in html
