"""GAN training, sampling and mixing on the real PneumoniaMNIST file (a few steps each)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from medlens.data.medmnist import load_medmnist_npz
from medlens.errors import ConfigError, InputError
from medlens.metrics.fid import c2st_auc, frechet_distance
from medlens.models.gan import GanSpec, build_gan
from medlens.report.gan import write_gan_report
from medlens.train.gan.config import GanConfig, load_gan_config, parse_gan_config
from medlens.train.gan.data import GanData, load_gan_data, to_generator_scale, to_stored_pixels
from medlens.train.gan.loop import fit_gan
from medlens.train.gan.mixing import augment_with_synthetic
from medlens.train.gan.quality import pooled_features, train_feature_net
from medlens.train.gan.sampling import generate, load_generator, sample_gan
from medlens.train.gan.training import train_gan

TINY = {
    "train_fraction_used": 0.02,  # 78 of the 3882 training images, both classes kept
    "epochs": 2,
    "batch_size": 16,
    "g_width": 8,
    "d_width": 8,
    "latent_dim": 16,
    "sample_every": 1,
    "feature_epochs": 1,
    "quality_samples": 40,
}


def tiny_config(npz: Path, out: Path, **changes: Any) -> GanConfig:
    return GanConfig(
        **{"name": "gan", "output_dir": out, "seed": 5, "data_path": npz, **TINY, **changes}
    )


@pytest.fixture(scope="module")
def gan_run(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained through ``medlens gan train``'s entry (report included)."""
    from medlens.commands.gan import gan_train

    torch.set_num_threads(1)
    config = tiny_config(pneumonia_npz, tmp_path_factory.mktemp("runs"))
    path = config.output_dir / "gan.yaml"
    path.write_text(config.to_yaml())
    return gan_train(path, progress=False)


def test_run_folder_is_complete(gan_run: Path) -> None:
    expected = {
        "config.yaml", "generator.pt", "discriminator.pt", "feature_net.pt", "labels.json",
        "history.csv", "quality.json", "report.html", "plots",
    }  # fmt: skip
    assert expected <= {p.name for p in gan_run.iterdir()}
    assert not list(gan_run.parent.glob("*.partial"))
    plots = {p.name for p in (gan_run / "plots").iterdir()}
    assert {"curves.png", "samples_epoch_001.png", "samples_epoch_002.png"} <= plots
    history = pd.read_csv(gan_run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert np.isfinite(history[["d_loss", "g_loss"]].to_numpy()).all()
    assert (history["steps"] == 78 // 16).all()
    quality = json.loads((gan_run / "quality.json").read_text())
    assert quality["fid"] >= 0 and 0 <= quality["c2st_auc"] <= 1
    assert quality["n_real"] == quality["n_synthetic"] == 40
    assert quality["n_train_images"] == 78
    html = (gan_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "FID" in html
    config = yaml.safe_load((gan_run / "config.yaml").read_text())
    assert config["lr"] == 2e-4 and config["betas"] == [0.5, 0.999]
    labels = json.loads((gan_run / "labels.json").read_text())
    assert labels["class_names"] == ["normal", "pneumonia"]


def test_the_config_is_written_as_resolved(gan_run: Path) -> None:
    written = (gan_run / "config.yaml").read_text()
    assert written == load_gan_config(gan_run.parent / "gan.yaml").to_yaml()


def test_finalize_runs_on_the_complete_stage_and_a_failure_publishes_nothing(
    pneumonia_npz: Path, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def finalize(stage: Path) -> None:
        seen["stage"] = stage
        seen["files"] = {p.name for p in stage.iterdir()}
        seen["published"] = (tmp_path / "gan").exists()
        seen["report"] = write_gan_report(stage).is_file()
        raise RuntimeError("the report failed")

    with pytest.raises(RuntimeError, match="the report failed"):
        train_gan(tiny_config(pneumonia_npz, tmp_path, epochs=1), progress=False, finalize=finalize)
    assert seen["stage"] == tmp_path / "gan.partial"
    expected = {
        "config.yaml", "generator.pt", "discriminator.pt", "feature_net.pt", "labels.json",
        "history.csv", "quality.json", "plots",
    }  # fmt: skip
    assert expected <= seen["files"] and "report.html" not in seen["files"]
    assert seen["report"]  # the report writer finds everything it reads in the stage
    assert not seen["published"] and not (tmp_path / "gan").exists()


def test_an_existing_run_is_not_overwritten_unasked(gan_run: Path, pneumonia_npz: Path) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        train_gan(tiny_config(pneumonia_npz, gan_run.parent), progress=False)


def _fit_once(npz: Path, seed: int) -> torch.nn.Module:
    config = tiny_config(npz, Path("unused"), seed=seed, epochs=1)
    data = load_gan_data(npz, 28, config.train_fraction_used, seed)
    torch.manual_seed(seed)
    generator, discriminator = build_gan(GanSpec(latent_dim=16, g_width=8, d_width=8))
    fit_gan(generator, discriminator, data, config, torch.device("cpu"))
    return generator


def test_same_seed_same_weights_and_samples(pneumonia_npz: Path) -> None:
    first, second = _fit_once(pneumonia_npz, 3), _fit_once(pneumonia_npz, 3)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = _fit_once(pneumonia_npz, 4)
    assert not torch.equal(first.project[0].weight, other.project[0].weight)
    labels = torch.tensor([0, 1, 1, 0])
    assert torch.equal(generate(first, labels, seed=7), generate(second, labels, seed=7))
    assert not torch.equal(generate(first, labels, seed=7), generate(first, labels, seed=8))


def test_a_saved_generator_reloads_identically(gan_run: Path) -> None:
    loaded, class_names = load_generator(gan_run)
    state = torch.load(gan_run / "generator.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["model"].values())  # loads anywhere
    assert class_names == ["normal", "pneumonia"] and loaded.spec.latent_dim == 16
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name


def test_sampled_npz_has_the_requested_class_and_medmnist_layout(
    gan_run: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    out = sample_gan(gan_run, 12, "pneumonia", tmp_path / "s.npz", real_npz=pneumonia_npz)
    synthetic, real = load_medmnist_npz(out), load_medmnist_npz(pneumonia_npz)
    assert synthetic.images["train"].shape == (12, 28, 28)
    assert synthetic.images["train"].dtype == np.uint8
    assert (synthetic.labels["train"] == 1).all()
    for split in ("val", "test"):
        assert np.array_equal(synthetic.images[split], real.images[split])
        assert np.array_equal(synthetic.labels[split], real.labels[split])
    by_index = sample_gan(gan_run, 12, 1, tmp_path / "i.npz", real_npz=pneumonia_npz)
    assert np.array_equal(load_medmnist_npz(by_index).images["train"], synthetic.images["train"])


def test_balanced_sampling_and_png_folders(gan_run: Path, tmp_path: Path) -> None:
    out = sample_gan(gan_run, 7, None, tmp_path / "s.npz")
    assert np.bincount(load_medmnist_npz(out).labels["train"]).tolist() == [4, 3]
    folder = sample_gan(gan_run, 5, "normal", tmp_path / "pngs")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert files == [f"normal/{i:05d}.png" for i in range(5)]
    from PIL import Image

    assert np.asarray(Image.open(folder / "normal" / "00000.png")).shape == (28, 28)


def test_bad_sampling_requests(gan_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown class"):
        sample_gan(gan_run, 3, "covid", tmp_path / "a.npz")
    with pytest.raises(ConfigError, match="unknown class"):
        sample_gan(gan_run, 3, 2, tmp_path / "a.npz")
    with pytest.raises(ConfigError, match="at least 1"):
        sample_gan(gan_run, 0, None, tmp_path / "a.npz")
    with pytest.raises(InputError, match="generator.pt"):
        sample_gan(tmp_path, 3, None, tmp_path / "a.npz")
    (tmp_path / "exists.npz").write_bytes(b"")
    with pytest.raises(InputError, match="already exists"):
        sample_gan(gan_run, 3, None, tmp_path / "exists.npz")


def test_mixing_keeps_the_classification_runs_subset(
    gan_run: Path, pneumonia_npz: Path, tmp_path: Path
) -> None:
    from medlens.config import parse_config
    from medlens.train.deep.run import prepare_data

    synthetic = sample_gan(gan_run, 10, None, tmp_path / "s.npz", real_npz=pneumonia_npz)
    mixed = load_medmnist_npz(augment_with_synthetic(pneumonia_npz, synthetic, tmp_path / "m.npz", 0.1, seed=4))  # fmt: skip
    real = load_medmnist_npz(pneumonia_npz)
    cfg = {"seed": 4, "data": {"path": str(pneumonia_npz), "train_fraction_used": 0.1}}
    picked = [int(c.case_id.split("/")[1]) for c in prepare_data(parse_config(cfg)).splits["train"]]
    assert len(picked) == round(0.1 * 388) + round(0.1 * 3494)
    n = len(picked)
    assert np.array_equal(mixed.images["train"][:n], real.images["train"][picked])
    assert np.array_equal(mixed.images["train"][n:], load_medmnist_npz(synthetic).images["train"])
    assert len(mixed.labels["train"]) == n + 10
    for split in ("val", "test"):
        assert np.array_equal(mixed.images[split], real.images[split])
    with np.load(tmp_path / "m.npz") as raw:
        assert raw["train_is_synthetic"].sum() == 10
        assert np.array_equal(raw["train_source_index"][:n], picked)


def test_mixing_refuses_images_of_another_size(gan_run: Path, pneumonia_npz: Path, tmp_path: Path) -> None:  # fmt: skip
    small = tmp_path / "small.npz"
    np.savez(small, **{f"{s}_{k}": np.zeros((2, 14, 14) if k == "images" else (2, 1), np.uint8)
                       for s in ("train", "val", "test") for k in ("images", "labels")})  # fmt: skip
    with pytest.raises(InputError, match="synthetic images are"):
        augment_with_synthetic(pneumonia_npz, small, tmp_path / "m.npz")


def test_real_images_are_closer_to_real_than_noise(pneumonia_npz: Path) -> None:
    data = load_gan_data(pneumonia_npz, 28, 0.05, seed=0)
    net = train_feature_net(data.images, data.labels, 2, epochs=2)
    real = pooled_features(net, data.images[:150], "cpu")
    other_real = pooled_features(net, data.val_images[:150], "cpu")
    noise = pooled_features(net, torch.rand(150, 1, 28, 28) * 2 - 1, "cpu")
    assert frechet_distance(real, other_real) < frechet_distance(real, noise)
    assert c2st_auc(real, noise) > 0.95
    assert c2st_auc(real, other_real) < c2st_auc(real, noise)


def test_pixel_conversions_round_trip(pneumonia_npz: Path) -> None:
    stored = load_medmnist_npz(pneumonia_npz).images["val"][:5]
    assert np.array_equal(to_stored_pixels(to_generator_scale(stored, 28)), stored)
    assert to_generator_scale(stored, 32).shape == (5, 1, 32, 32)
    assert to_stored_pixels(to_generator_scale(stored, 32), (28, 28)).shape == (5, 28, 28)
    rgb = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    assert np.array_equal(to_stored_pixels(to_generator_scale(rgb, 28)), rgb)


def test_conditioning_is_learnt_on_two_obvious_classes() -> None:
    """Dark images for class 0, bright ones for class 1: the generator must follow the label."""
    rng = torch.Generator().manual_seed(0)
    labels = torch.arange(128) % 2
    images = (labels.float() * 1.2 - 0.6).view(-1, 1, 1, 1) + 0.1 * torch.randn(
        128, 1, 28, 28, generator=rng
    )
    data = GanData(images.clamp(-1, 1), labels, ["dark", "bright"], np.arange(128),
                   images[:4], labels[:4], (28, 28))  # fmt: skip
    config = GanConfig(data_path="unused.npz", epochs=40, batch_size=32, latent_dim=8,
                       lr=2e-3, diff_augment=False, seed=0)  # fmt: skip
    torch.manual_seed(0)
    generator, discriminator = build_gan(GanSpec(latent_dim=8, g_width=8, d_width=8))
    fit_gan(generator, discriminator, data, config, torch.device("cpu"))
    dark = generate(generator, torch.zeros(64, dtype=torch.long), seed=1).mean()
    bright = generate(generator, torch.ones(64, dtype=torch.long), seed=1).mean()
    assert bright - dark > 0.6


def test_time_budget_stops_training(pneumonia_npz: Path) -> None:
    config = tiny_config(pneumonia_npz, Path("unused"), epochs=100_000, max_minutes=0.01)
    data = load_gan_data(pneumonia_npz, 28, config.train_fraction_used, config.seed)
    generator, discriminator = build_gan(GanSpec(latent_dim=16, g_width=8, d_width=8))
    ends: list[tuple[int, bool]] = []
    fit = fit_gan(generator, discriminator, data, config, torch.device("cpu"),
                  lambda epoch, last: ends.append((epoch, last)))  # fmt: skip
    assert fit.stopped_by_budget and fit.epochs_run < 100_000
    assert fit.train_seconds < 0.6 + 3.0  # the budget plus at most one step's overrun
    assert ends[-1] == (fit.epochs_run, True) and not any(last for _, last in ends[:-1])
    assert len(fit.history) == fit.epochs_run


def test_config_validation_and_loading(pneumonia_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image_size"):
        parse_gan_config({"data_path": "x.npz", "image_size": 30})
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_gan_config({"data_path": "x.npz", "learning_rate": 0.1})
    with pytest.raises(ConfigError, match="betas"):
        parse_gan_config({"data_path": "x.npz", "betas": [0.5, 1.0]})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gan.yaml").write_text("data_path: ../data.npz\nepochs: 3\n")
    config = load_gan_config(tmp_path / "sub" / "gan.yaml", {"epochs": 5})
    assert config.data_path == (tmp_path / "data.npz").resolve() and config.epochs == 5
    with pytest.raises(InputError, match="not found"):
        load_gan_config(tmp_path / "missing.yaml")


def test_volumes_are_refused(adrenal_npz: Path) -> None:
    with pytest.raises(InputError, match="2D images"):
        load_gan_data(adrenal_npz, 28, 1.0, seed=0)


def test_rgb_images_resized_to_32_px(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    npz = tmp_path / "rgb.npz"
    arrays = {}
    for split, n in (("train", 40), ("val", 10), ("test", 10)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(-1, 1).astype(np.uint8)
    np.savez(npz, **arrays)
    run = train_gan(
        tiny_config(npz, tmp_path / "runs", image_size=32, train_fraction_used=1.0, epochs=1),
        progress=False,
    )
    out = sample_gan(run, 6, None, tmp_path / "s.npz", real_npz=npz)
    sampled = load_medmnist_npz(out)
    assert sampled.images["train"].shape == (6, 28, 28, 3)
    assert sampled.labels["train"].tolist() == [0, 0, 1, 1, 2, 2]


def test_cli_gan_sample(gan_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medlens.cli import app

    out = tmp_path / "syn.npz"
    result = CliRunner().invoke(app, ["gan", "sample", str(gan_run), "--n", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert len(data["train_images"]) == 6
