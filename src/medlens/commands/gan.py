"""Entry functions of ``medlens gan train`` and ``medlens gan sample`` (and ``gan mix``), for
the Typer commands in cli.py to call; each returns the path it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def gan_train(
    config_path: str | Path,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """``medlens gan train CONFIG [--set key=value] [--overwrite] [--quiet]``.

    Args:
        config_path: a GAN config YAML (see ``medlens.train.gan.training.GanConfig``).
        overrides: flat keys to override, e.g. ``{"epochs": 5, "max_minutes": 2}``.
        overwrite: replace an existing run folder of the same name.
        progress: print a line per sampled epoch.

    Returns:
        The run folder (``report.html`` inside).

    Raises:
        InputError: an unreadable config or data file.
        ConfigError: an invalid config value, or an existing run folder without ``overwrite``.
    """
    from medlens.report.gan import write_gan_report
    from medlens.train.gan.config import load_gan_config
    from medlens.train.gan.training import train_gan

    def write_report(stage: Path) -> None:
        write_gan_report(stage)  # on the complete staging folder, before it is published

    return train_gan(
        load_gan_config(config_path, overrides),
        overwrite=overwrite,
        progress=progress,
        finalize=write_report,
    )


def gan_sample(
    run_dir: str | Path,
    n: int,
    class_name_or_index: str | int | None = None,
    out: str | Path = "synthetic.npz",
    seed: int = 0,
    real_npz: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """``medlens gan sample RUN_DIR --n N [--class NAME|INDEX] --out OUT [--seed S]
    [--real REAL.npz] [--overwrite]``.

    ``--class`` omitted (or ``balanced``) gives an even share of every class. An ``OUT``
    ending in ``.npz`` gets the MedMNIST layout (``--real`` copies that file's val/test
    splits and resizes the images to its size); any other ``OUT`` is a folder of PNGs, one
    sub-folder per class.

    Returns:
        ``out``.

    Raises:
        InputError: a bad run folder, an existing ``out`` without ``overwrite``, or an
            unusable ``real_npz``.
        ConfigError: ``n`` below 1 or an unknown class.
    """
    from medlens.train.gan.sampling import sample_gan

    return sample_gan(run_dir, n, class_name_or_index, out, seed, real_npz, overwrite)


def gan_mix(
    real_npz: str | Path,
    synthetic_npz: str | Path,
    out_npz: str | Path,
    fraction_used: float = 0.1,
    seed: int = 0,
) -> Path:
    """``medlens gan mix REAL.npz SYNTHETIC.npz OUT.npz [--fraction F] [--seed S]``: the
    stratified fraction ``F`` of the real train split plus the synthetic images; real
    val/test unchanged.

    Raises:
        InputError: unreadable files or synthetic images of another shape.
        ConfigError: a fraction outside (0, 1].
    """
    from medlens.train.gan.mixing import augment_with_synthetic

    return augment_with_synthetic(real_npz, synthetic_npz, out_npz, fraction_used, seed)
