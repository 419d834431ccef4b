"""``medlens gan train``: a GAN config in, a self-contained GAN run folder out.

The folder is built in ``<output_dir>/<name>.partial/`` and renamed to ``<name>/`` once
every file is written, so a killed run never looks finished::

    runs/<name>/
      config.yaml            the resolved GanConfig (every default written out)
      generator.pt           generator weights + the GanSpec that rebuilds it + class names
      discriminator.pt       discriminator weights
      feature_net.pt         the classifier whose features measure sample quality
      labels.json            class names
      history.csv            d_loss, g_loss, D(real), D(fake), seconds per epoch
      quality.json           FID and C2ST AUC of samples vs the training images, with the
                             same measures of the real validation images as a reference
      plots/curves.png       the losses per epoch
      plots/samples_epoch_XXX.png   a grid per sampled epoch, one row per class
      report.html            what a person reads

Example config (YAML)::

    name: pneumonia-gan
    data_path: ../shared/data/pneumoniamnist_subset/pneumoniamnist.npz
    image_size: 28
    epochs: 300
    max_minutes: 6
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medlens.errors import ConfigError, InputError
from medlens.io_utils import publish_run, write_atomic, write_json_atomic
from medlens.models.gan import GanSpec, build_gan, upsampling_plan
from medlens.train.checkpoint import save_checkpoint
from medlens.train.gan_data import load_gan_data
from medlens.train.gan_loop import GanFit, fit_gan
from medlens.train.seeding import seed_everything


class GanConfig(BaseModel):
    """Everything a GAN run depends on. Unknown keys are errors.

    Attributes:
        name: the run folder's name under ``output_dir``.
        output_dir: where run folders go.
        seed: seeds the weights, the noise, the batches and the augmentations.
        data_path: a MedMNIST-layout ``.npz`` of 2D images (grey or RGB).
        train_fraction_used: the stratified share of the train split learnt from (the same
            draw as a classification run's ``data.train_fraction_used`` with this seed).
        image_size: side of the generated images, px (a multiple of 4 in 28..64); real
            images of another size are resized to it.
        latent_dim, embed_dim: lengths of the noise vector and of the label embedding.
        g_width, d_width: channel widths of the generator and discriminator.
        spectral_norm: spectral normalisation on the discriminator (see ``models.gan``).
        diff_augment: differentiable augmentation of what the discriminator sees.
        class_balanced: draw real batches with every class equally likely (rare classes
            would otherwise be learnt from a handful of steps).
        epochs: passes over the training images (an epoch is ``N // batch_size`` steps).
        batch_size: images per step.
        lr, betas: Adam's settings for both networks (DCGAN's 2e-4, (0.5, 0.999)).
        max_minutes: wall-clock budget of the adversarial training (the quality measure
            after it is bounded by ``feature_max_seconds``).
        sample_every: epochs between two sample grids (the last epoch always gets one).
        grid_columns: samples per class in a grid.
        quality_samples: at most this many real images (and as many samples) for FID/C2ST.
        feature_model: the registered classifier trained on the real images whose pooled
            features FID and C2ST compare.
        feature_epochs, feature_max_seconds: its training length and wall-clock cap (s).
        device: ``cpu``, ``cuda``...; default CUDA when available.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "gan"
    output_dir: Path = Path("runs")
    seed: int = 0
    data_path: Path
    train_fraction_used: float = Field(1.0, gt=0, le=1)
    image_size: int = Field(28, ge=28, le=64)
    latent_dim: int = Field(100, ge=1)
    embed_dim: int = Field(32, ge=1)
    g_width: int = Field(64, ge=1)
    d_width: int = Field(64, ge=1)
    spectral_norm: bool = True
    diff_augment: bool = True
    class_balanced: bool = True
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    max_minutes: float | None = Field(None, gt=0)
    sample_every: int = Field(10, ge=1)
    grid_columns: int = Field(8, ge=1, le=32)
    quality_samples: int = Field(1000, ge=10)
    feature_model: str = "small_cnn"
    feature_epochs: int = Field(10, ge=1)
    feature_max_seconds: float = Field(60.0, gt=0)
    device: str | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return value

    @field_validator("image_size")
    @classmethod
    def _supported_size(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"must be a multiple of 4 px (28, 32, ... 64), got {value}")
        return value

    @field_validator("betas")
    @classmethod
    def _adam_betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"Adam betas must lie in [0, 1), got {list(value)}")
        return value

    def run_dir(self) -> Path:
        return self.output_dir / self.name

    def to_yaml(self) -> str:
        """The resolved config with every default written out."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_gan_config(raw: Any, source: str | Path | None = None) -> GanConfig:
    """Validate a GAN config mapping.

    Raises:
        ConfigError: naming the first offending key and the reason.
    """
    if not isinstance(raw, dict):
        raise ConfigError("<root>", "a GAN config must be a YAML mapping", source)
    try:
        return GanConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"]) or "<root>"
        raise ConfigError(key, err["msg"], source) from None


def load_gan_config(path: str | Path, overrides: dict[str, Any] | None = None) -> GanConfig:
    """Read a GAN config YAML, apply ``overrides`` (``{"epochs": 5}``), validate it; a
    relative ``data_path`` in the file resolves against the file's folder.

    Raises:
        InputError: a missing or unparsable file.
        ConfigError: an invalid key or value.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(path, f"is not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(raw, dict):
        data_path = raw.get("data_path")
        if isinstance(data_path, str) and not Path(data_path).is_absolute():
            raw["data_path"] = str((path.parent / data_path).resolve())
        raw = {**raw, **(overrides or {})}  # an override's path is relative to the caller
    return parse_gan_config(raw, source=path)


def _device(config: GanConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _write_weights(
    stage: Path, generator: torch.nn.Module, discriminator: torch.nn.Module, spec: GanSpec,
    class_names: list[str], fit: GanFit,
) -> None:  # fmt: skip
    meta = {"spec": spec.as_dict(), "class_names": class_names, "epochs_run": fit.epochs_run}
    save_checkpoint({"model": cpu_state(generator), **meta}, stage / "generator.pt")
    save_checkpoint({"model": cpu_state(discriminator), **meta}, stage / "discriminator.pt")


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict on the CPU, so a run trained on a GPU loads anywhere."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def train_gan(config: GanConfig, overwrite: bool = False, progress: bool = True) -> Path:
    """Train the class-conditional GAN of ``config`` and write its run folder.

    Args:
        config: the run's settings.
        overwrite: replace an existing run folder of the same name (once the new one is whole).
        progress: print one line per sampled epoch.

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        ConfigError: an existing run folder without ``overwrite``, or a bad setting.
        InputError: unreadable data, or 3D volumes.
    """
    from medlens.train.gan_plots import save_loss_curves, save_sample_grid
    from medlens.train.gan_quality import evaluate_sample_quality
    from medlens.train.gan_report import write_gan_report

    final_dir, stage = config.run_dir(), config.output_dir / f"{config.name}.partial"
    if final_dir.exists() and not overwrite:
        raise ConfigError(
            "name", f"run folder {final_dir} already exists (use --overwrite or another name)"
        )
    upsampling_plan(config.image_size)
    seed_everything(config.seed)
    data = load_gan_data(
        config.data_path, config.image_size, config.train_fraction_used, config.seed
    )
    spec = GanSpec(
        image_size=config.image_size,
        channels=data.channels,
        num_classes=len(data.class_names),
        latent_dim=config.latent_dim,
        embed_dim=config.embed_dim,
        g_width=config.g_width,
        d_width=config.d_width,
        spectral_norm=config.spectral_norm,
    )
    torch.manual_seed(config.seed)
    generator, discriminator = build_gan(spec)
    device = _device(config)
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "plots").mkdir(parents=True)

    # the same noise for every grid, so the grids show the generator changing, not the noise
    grid_noise = torch.Generator().manual_seed(config.seed + 1)
    n_classes, cols = spec.num_classes, config.grid_columns
    grid_z = torch.randn((n_classes * cols, spec.latent_dim), generator=grid_noise)
    grid_y = torch.arange(n_classes).repeat_interleave(cols)
    started = time.perf_counter()

    def grid(epoch: int) -> None:
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = generator(grid_z.to(device), grid_y.to(device))
        generator.train(was_training)
        path = stage / "plots" / f"samples_epoch_{epoch:03d}.png"
        save_sample_grid(images, data.class_names, cols, path, f"epoch {epoch}")
        if progress:
            print(f"[gan] epoch {epoch} ({time.perf_counter() - started:.0f} s)", flush=True)

    def on_epoch_end(epoch: int, last: bool) -> None:
        if last or epoch % config.sample_every == 0:
            grid(epoch)

    fit = fit_gan(generator, discriminator, data, config, device, on_epoch_end)
    _write_weights(stage, generator, discriminator, spec, data.class_names, fit)
    write_atomic(stage / "config.yaml", config.to_yaml())
    write_json_atomic(stage / "labels.json", {"class_names": data.class_names})
    history = pd.DataFrame(fit.history)
    history.to_csv(stage / "history.csv", index=False)
    save_loss_curves(history, stage / "plots" / "curves.png")
    quality = evaluate_sample_quality(generator, data, config, device, stage / "feature_net.pt")
    quality.update(
        epochs_run=fit.epochs_run,
        planned_epochs=config.epochs,
        train_seconds=fit.train_seconds,
        stopped_by_budget=fit.stopped_by_budget,
        n_train_images=len(data.labels),
    )
    write_json_atomic(stage / "quality.json", quality)
    write_gan_report(stage)
    publish_run(stage, final_dir)
    return final_dir
