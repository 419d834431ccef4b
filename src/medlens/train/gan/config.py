"""The GAN run config (``medlens gan train CONFIG.yaml``): YAML in, validated by pydantic,
resolved YAML out. Unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medlens.errors import ConfigError, InputError


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
