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
      report.html            what a person reads (written by the ``finalize`` hook that
                             ``medlens gan train`` passes: medlens.report.gan)

Example config (YAML)::

    name: pneumonia-gan
    data_path: ../shared/data/pneumoniamnist_subset/pneumoniamnist.npz
    image_size: 28
    epochs: 300
    max_minutes: 6
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from medlens.models.gan import GanSpec, build_gan, upsampling_plan
from medlens.run_folder import layout
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.train.gan.config import GanConfig
from medlens.train.gan.data import load_gan_data
from medlens.train.gan.loop import GanFit, fit_gan
from medlens.train.seeding import seed_everything

#: The GAN run's own files (named in ``run_folder.layout``).
GENERATOR, DISCRIMINATOR = layout.GENERATOR, layout.DISCRIMINATOR
FEATURE_NET, QUALITY = layout.FEATURE_NET, layout.QUALITY


def _device(config: GanConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _write_weights(
    writer: RunWriter, generator: torch.nn.Module, discriminator: torch.nn.Module,
    spec: GanSpec, class_names: list[str], fit: GanFit,
) -> None:  # fmt: skip
    meta = {"spec": spec.as_dict(), "class_names": class_names, "epochs_run": fit.epochs_run}
    writer.checkpoint({"model": cpu_state(generator), **meta}, GENERATOR)
    writer.checkpoint({"model": cpu_state(discriminator), **meta}, DISCRIMINATOR)


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict on the CPU, so a run trained on a GPU loads anywhere."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def train_gan(
    config: GanConfig,
    overwrite: bool = False,
    progress: bool = True,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Train the class-conditional GAN of ``config`` and write its run folder.

    The folder is built in ``<output_dir>/<name>.partial/`` and renamed when complete;
    ``finalize(stage_dir)`` runs just before (``medlens gan train`` writes report.html there).

    Args:
        config: the run's settings.
        overwrite: replace an existing run folder of the same name (once the new one is whole).
        progress: print one line per sampled epoch.
        finalize: called on the complete staging folder before it is published; if it
            raises, nothing is published.

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        ConfigError: an existing run folder without ``overwrite``, or a bad setting.
        InputError: unreadable data, or 3D volumes.
    """
    from medlens.train.gan.plots import save_loss_curves, save_sample_grid
    from medlens.train.gan.quality import evaluate_sample_quality

    final_dir = config.run_dir()
    check_free(final_dir, overwrite)
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
    stage = open_stage(final_dir)
    writer = RunWriter(stage)
    writer.path(layout.PLOTS).mkdir()

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
        path = writer.path(layout.PLOTS) / f"samples_epoch_{epoch:03d}.png"
        save_sample_grid(images, data.class_names, cols, path, f"epoch {epoch}")
        if progress:
            print(f"[gan] epoch {epoch} ({time.perf_counter() - started:.0f} s)", flush=True)

    def on_epoch_end(epoch: int, last: bool) -> None:
        if last or epoch % config.sample_every == 0:
            grid(epoch)

    fit = fit_gan(generator, discriminator, data, config, device, on_epoch_end)
    _write_weights(writer, generator, discriminator, spec, data.class_names, fit)
    writer.config(config.model_dump(mode="json"))  # the same text as config.to_yaml()
    writer.json(layout.LABELS, {"class_names": data.class_names})
    history = pd.DataFrame(fit.history)
    writer.table(layout.HISTORY, history)
    save_loss_curves(history, writer.path(layout.PLOTS) / "curves.png")
    quality = evaluate_sample_quality(generator, data, config, device, writer.path(FEATURE_NET))
    quality.update(
        epochs_run=fit.epochs_run,
        planned_epochs=config.epochs,
        train_seconds=fit.train_seconds,
        stopped_by_budget=fit.stopped_by_budget,
        n_train_images=len(data.labels),
    )
    writer.json(QUALITY, quality)
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir
