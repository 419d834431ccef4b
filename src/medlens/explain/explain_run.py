"""``medlens explain``: overlays and a JSON summary for image files, through a run's model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.explain.overlay import save_overlay
from medlens.explain.run_cases import explain_prepared
from medlens.io_utils import write_json_atomic
from medlens.run_folder import layout


@dataclass
class ExplanationResult:
    """One explained input.

    Attributes:
        case_id: the file, or ``file.npz#test/000123`` for an entry of an ``.npz``.
        file: the file read.
        method: the explanation method.
        target: the explained class index; ``target_name`` its name.
        predicted: the run's decision for the case (at its threshold); ``predicted_name``.
        probabilities: class name -> probability.
        overlay: the PNG written.
        heatmap: ``(*spatial)`` in [0, 1] on the preprocessed grid (not written to JSON).
    """

    case_id: str
    file: str
    method: str
    target: int
    target_name: str
    predicted: int
    predicted_name: str
    probabilities: dict[str, float]
    overlay: Path
    heatmap: np.ndarray = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The summary entry (everything but the heatmap array)."""
        return {
            "case_id": self.case_id,
            "file": self.file,
            "method": self.method,
            "target": self.target,
            "target_name": self.target_name,
            "predicted": self.predicted,
            "predicted_name": self.predicted_name,
            "probabilities": self.probabilities,
            "overlay": self.overlay.name,
        }


def explain_run(
    run_dir: str | Path,
    inputs: list[str | Path],
    method: str = "gradcam",
    out_dir: str | Path | None = None,
    target: int | str | None = None,
    cmap: str = "jet",
    alpha: float = 0.45,
    **params: Any,
) -> list[ExplanationResult]:
    """Explain a run's decisions on image files; write one overlay PNG per image and
    ``explanations.json``.

    Inputs are read as ``medlens predict`` reads them (DICOM, NIfTI, PNG/JPEG/TIFF, .npy,
    each image of an .npz, a folder of DICOM slices as one volume for a 3D run) and go
    through the run's own preprocessing; overlays are drawn on the preprocessed image.

    Args:
        run_dir: a finished classification run folder.
        inputs: files or folders.
        method: a name of ``EXPLAINERS``.
        out_dir: where to write; default ``<run_dir>/explanations/<method>``.
        target: the class to explain (index or name); ``None``: the class the run predicts.
        cmap, alpha: the overlay's colormap and opacity.
        **params: the method's own parameters (see ``explain``).

    Raises:
        InputError: an unreadable input, or one whose preprocessed shape the model was not
            trained on (nothing is written then).
        ConfigError: an unknown target class or method parameter.
    """
    from medlens.inference.discovery import iter_input_cases
    from medlens.inference.loaded_run import load_run, prepare_input

    run = load_run(run_dir)
    volumes = run.input_shape is not None and len(run.input_shape) == 4
    ids, files, arrays = [], [], []
    for case_id, file, load in iter_input_cases([Path(p) for p in inputs], volumes=volumes):
        arrays.append(prepare_input(run, load()))
        ids.append(case_id)
        files.append(file)
    if not arrays:
        raise InputError(inputs[0] if inputs else "<inputs>", "holds no image to explain")
    explained = explain_prepared(run, arrays, method, target, **params)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "explanations" / method
    names = run.class_names
    results = []
    for k, case_id in enumerate(ids):
        target_k, predicted_k = int(explained.targets[k]), int(explained.predicted[k])
        overlay = save_overlay(
            arrays[k],
            explained.heatmaps[k],
            out / f"{k:04d}_{safe_name(case_id)}.png",
            title=f"{Path(case_id).name}: {method} for {names[target_k]} "
            f"(p = {explained.probabilities[k, target_k]:.2f}, predicted {names[predicted_k]})",
            cmap=cmap,
            alpha=alpha,
        )
        results.append(
            ExplanationResult(
                case_id=case_id,
                file=files[k],
                method=method,
                target=target_k,
                target_name=names[target_k],
                predicted=predicted_k,
                predicted_name=names[predicted_k],
                probabilities={
                    n: float(explained.probabilities[k, c]) for c, n in enumerate(names)
                },
                overlay=overlay,
                heatmap=explained.heatmaps[k],
            )
        )
    write_json_atomic(
        out / layout.EXPLANATIONS,
        {
            "run": str(run_dir),
            "method": method,
            "params": params,
            "target": target,
            "cases": [r.to_json() for r in results],
        },
    )
    return results


def safe_name(case_id: str, max_length: int = 80) -> str:
    """A file-name stem for a case id: the last path parts, odd characters replaced by ``_``."""
    tail = "_".join(Path(case_id.replace("#", "/")).parts[-2:])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)[-max_length:] or "case"
