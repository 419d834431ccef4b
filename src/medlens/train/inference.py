"""Loading a finished run folder and applying its model to new images."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from medlens.config import RunConfig
from medlens.data.image import Image
from medlens.errors import InputError
from medlens.train.checkpoint import load_checkpoint


@dataclass
class LoadedRun:
    """Everything inference needs from a run folder."""

    run_dir: Path
    config: RunConfig
    model: torch.nn.Module
    preprocess: Any
    class_names: list[str]
    threshold: float
    device: torch.device


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """Read ``config.yaml``, ``model.pt``, ``preprocessing.json`` and ``labels.json``.

    Raises:
        InputError: naming the missing or unreadable file of the run folder.
    """
    from medlens.models import model_from_config
    from medlens.preprocess.pipeline import load_pipeline

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run folder not found")
    for required in ("config.yaml", "model.pt", "preprocessing.json", "labels.json"):
        if not (run_dir / required).is_file():
            raise InputError(
                run_dir / required, "missing from the run folder (was training finished?)"
            )
    config = RunConfig.model_validate(yaml.safe_load((run_dir / "config.yaml").read_text()))
    labels = json.loads((run_dir / "labels.json").read_text())
    state = load_checkpoint(run_dir / "model.pt")
    model = model_from_config(dict(state.get("model_config") or {}))
    model.load_state_dict(state["model"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev).eval()
    return LoadedRun(
        run_dir=run_dir,
        config=config,
        model=model,
        preprocess=load_pipeline(run_dir / "preprocessing.json"),
        class_names=list(labels["class_names"]),
        threshold=float(labels["threshold"]),
        device=dev,
    )


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.no_grad()
def predict_images(run: LoadedRun, images: Iterable[Image], batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(N, K)`` for raw images, with the run's preprocessing replayed.

    Raises:
        InputError: when a preprocessed image does not have the shape the model was trained on
            (names the image's source file).
    """
    out: list[np.ndarray] = []
    reference: tuple[int, ...] | None = None
    for batch in _batches(images, batch_size):
        arrays = []
        for image in batch:
            x = run.preprocess(image).array.astype(np.float32, copy=False)
            if not np.all(np.isfinite(x)):
                raise InputError(image.source, "image contains NaN or infinite values")
            reference = reference or x.shape
            if x.shape != reference:
                raise InputError(
                    image.source,
                    f"preprocessed shape {x.shape} differs from {reference}; add a resize to the config",
                )
            arrays.append(x)
        tensor = torch.from_numpy(np.stack(arrays)).to(run.device)
        try:
            logits = run.model(tensor)
        except RuntimeError as exc:
            raise InputError(
                batch[0].source,
                f"the model cannot take an input of shape {tuple(tensor.shape[1:])}",
            ) from exc
        probs = torch.softmax(logits.float(), dim=1)
        if run.config.train.tta_flip:
            probs = 0.5 * (
                probs + torch.softmax(run.model(torch.flip(tensor, dims=(-1,))).float(), dim=1)
            )
        out.append(probs.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(run.class_names)))
