"""A finished detection run loaded for inference: the detector, the preprocessing, the
classes and each class's operating threshold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medlens.config import RunConfig
from medlens.errors import InputError, MedlensError
from medlens.run_folder import layout
from medlens.run_folder.checkpoint import load_checkpoint
from medlens.run_folder.files import read_json
from medlens.run_folder.reader import read_run_config, require_files


@dataclass
class DetectionRunModel:
    """What applying a detection run needs.

    Attributes:
        thresholds: each class's operating score threshold (chosen on validation).
        mask_threshold: instance-mask probability above which a pixel is in the mask.
    """

    run_dir: Path
    config: RunConfig
    model: Any
    preprocess: Any
    class_names: list[str]
    thresholds: list[float]
    mask_threshold: float
    device: torch.device


def load_detection_run(run_dir: str | Path, device: str | None = None) -> DetectionRunModel:
    """Read ``config.yaml``, ``model.pt``, ``preprocessing.json`` and ``labels.json`` of a
    detection run and build its detector in eval mode.

    Raises:
        InputError: naming the missing, unreadable or inconsistent file.
    """
    from medlens.models.detection import detector_from_config
    from medlens.preprocess.pipeline import load_pipeline

    run_dir = Path(run_dir)
    require_files(run_dir, (layout.CONFIG, layout.MODEL, layout.PREPROCESSING, layout.LABELS))
    config = read_run_config(run_dir)
    labels = read_json(run_dir / layout.LABELS, required=True)
    names = labels.get("class_names") if isinstance(labels, dict) else None
    thresholds = labels.get("thresholds") if isinstance(labels, dict) else None
    if not isinstance(names, list) or not isinstance(thresholds, dict):
        raise InputError(run_dir / layout.LABELS, "needs 'class_names' and 'thresholds' per class")
    missing = [n for n in names if n not in thresholds]
    if missing:
        raise InputError(run_dir / layout.LABELS, f"no threshold for {', '.join(missing)}")
    state = load_checkpoint(run_dir / layout.MODEL)
    try:
        model = detector_from_config(dict(state.get("model_config") or {}))
        model.load_state_dict(state["model"])
    except MedlensError:
        raise
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise InputError(
            run_dir / layout.MODEL,
            f"weights do not fit the recorded detector ({type(exc).__name__})",
        ) from None
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev).eval()
    return DetectionRunModel(
        run_dir=run_dir,
        config=config,
        model=model,
        preprocess=load_pipeline(run_dir / layout.PREPROCESSING),
        class_names=[str(n) for n in names],
        thresholds=[float(thresholds[n]) for n in names],
        mask_threshold=float(config.detection.mask_threshold),
        device=dev,
    )
