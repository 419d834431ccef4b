"""``report.html`` of a GAN run: one self-contained page (inline CSS, figures as base64 PNG)
with the sample quality, the learning curves and the sample grids."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

import medlens
from medlens.io_utils import write_atomic

MAX_GRIDS = 6  # earlier grids shown besides the last one, evenly spaced

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GAN run {{ name }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
img { max-width: 100%; } .grids img { max-width: 300px; margin: 0 0.5em 0.5em 0; }
pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; } .note { color: #555; }
</style></head><body>
<h1>GAN run <code>{{ name }}</code></h1>
<p class="note">Class-conditional DCGAN, {{ spec }}; trained {{ epochs_run }} of
{{ planned_epochs }} epochs in {{ minutes }} min{% if stopped %} (stopped by the time
budget){% endif %} on {{ n_train }} real images. medlens {{ version }}.</p>
<h2>Sample quality</h2>
<table>
<tr><th>measure</th><th>generated vs training images</th><th>reference: validation vs training images</th></tr>
<tr><td>FID (feature units&sup2;, lower is closer)</td><td>{{ fid }}</td><td>{{ fid_ref }}</td></tr>
<tr><td>C2ST ROC AUC (0.5 = indistinguishable)</td><td>{{ c2st }}</td><td>{{ c2st_ref }}</td></tr>
</table>
<p class="note">Both measures compare the pooled {{ feature_dim }}-dimensional features of a
{{ feature_model }} classifier trained on the real training images (training accuracy
{{ feature_acc }}), not Inception features: compare them between GANs trained on the same
images, not with published FIDs. {{ n_real }} training images against {{ n_synthetic }}
images generated for the same labels; the reference uses {{ n_reference }} of each.</p>
<h2>Samples after the last epoch</h2>
<img src="{{ last_grid }}" alt="last sample grid">
<h2>Learning curves</h2>
<img src="{{ curves }}" alt="losses per epoch">
{% if grids %}<h2>Samples during training</h2><div class="grids">
{% for g in grids %}<img src="{{ g }}" alt="sample grid">{% endfor %}</div>{% endif %}
<h2>Configuration</h2><pre>{{ config }}</pre>
</body></html>
"""


def _uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_gan_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` from the run folder's ``quality.json``, ``config.yaml``,
    ``generator.pt`` spec and ``plots/``; returns its path."""
    import yaml

    from medlens.run_folder.checkpoint import load_checkpoint

    run = Path(run_dir)
    quality = json.loads((run / "quality.json").read_text())
    config_text = (run / "config.yaml").read_text()
    spec = load_checkpoint(run / "generator.pt")["spec"]
    grids = sorted(
        (run / "plots").glob("samples_epoch_*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
    )
    earlier = grids[:-1]
    if len(earlier) > MAX_GRIDS:
        step = len(earlier) / MAX_GRIDS
        earlier = [earlier[int(i * step)] for i in range(MAX_GRIDS)]
    html = (
        Environment(autoescape=True, undefined=StrictUndefined)
        .from_string(_TEMPLATE)
        .render(
            name=yaml.safe_load(config_text)["name"],
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
            last_grid=_uri(grids[-1]),
            curves=_uri(run / "plots" / "curves.png"),
            grids=[_uri(g) for g in earlier],
            config=config_text,
        )
    )
    return write_atomic(run / "report.html", html)
