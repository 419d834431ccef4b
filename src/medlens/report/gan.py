"""``report.html`` of a GAN run: one self-contained page (inline CSS, figures as base64 PNG)
with the sample quality, the learning curves and the sample grids, rendered from
``templates/gan.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import medlens
from medlens.io_utils import write_atomic
from medlens.report.rendering import png_data_uri, template_environment
from medlens.run_folder import layout

MAX_GRIDS = 6  # earlier grids shown besides the last one, evenly spaced


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _figure(run: Path, path: Path) -> dict[str, str]:
    return {"src": png_data_uri(path), "file": path.relative_to(run).as_posix()}


def write_gan_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` from the run folder's ``quality.json``, ``config.yaml``,
    ``generator.pt`` spec and ``plots/``; returns its path.

    Works on the staging folder too (``medlens gan train`` calls it there, before the run
    is published).
    """
    import yaml

    from medlens.run_folder.checkpoint import load_checkpoint

    run = Path(run_dir)
    quality = json.loads((run / layout.QUALITY).read_text())
    config_text = (run / layout.CONFIG).read_text()
    spec = load_checkpoint(run / layout.GENERATOR)["spec"]
    plots = run / layout.PLOTS
    grids = sorted(plots.glob("samples_epoch_*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    earlier = grids[:-1]
    if len(earlier) > MAX_GRIDS:
        step = len(earlier) / MAX_GRIDS
        earlier = [earlier[int(i * step)] for i in range(MAX_GRIDS)]
    name = yaml.safe_load(config_text)["name"]
    html = (
        template_environment()
        .get_template("gan.html")
        .render(
            title=f"GAN run {name}",
            name=name,
            spec=(
                f"{spec['image_size']} px, {spec['channels']} channel(s), "
                f"{spec['num_classes']} classes, latent {spec['latent_dim']}, "
                f"spectral norm {'on' if spec['spectral_norm'] else 'off'}"
            ),
            epochs_run=quality["epochs_run"],
            planned_epochs=quality["planned_epochs"],
            minutes=_fmt(quality["train_seconds"] / 60, 1),
            stopped=quality["stopped_by_budget"],
            n_train=quality["n_train_images"],
            version=medlens.__version__,
            fid=_fmt(quality["fid"]),
            fid_ref=_fmt(quality["fid_reference_val"]),
            c2st=_fmt(quality["c2st_auc"]),
            c2st_ref=_fmt(quality["c2st_auc_reference_val"]),
            feature_dim=quality["feature_dim"],
            feature_model=quality["feature_model"],
            feature_acc=_fmt(quality["feature_net_train_accuracy"]),
            n_real=quality["n_real"],
            n_synthetic=quality["n_synthetic"],
            n_reference=quality["n_reference"],
            last_grid=_figure(run, grids[-1]),
            curves=_figure(run, plots / "curves.png"),
            grids=[_figure(run, g) for g in earlier],
            config=config_text,
        )
    )
    return write_atomic(run / layout.REPORT, html)
