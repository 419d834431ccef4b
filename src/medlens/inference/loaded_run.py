"""Loading a finished run folder and applying its model to new images."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.config import RunConfig
from medlens.data.image import Image
from medlens.errors import InputError, MedlensError
from medlens.run_folder import layout
from medlens.run_folder.checkpoint import load_checkpoint
from medlens.run_folder.reader import read_decision_labels, read_run_config, require_files
from medlens.run_folder.trust import TrustRule, read_trust_rule
from medlens.tasks import Task, task_of


@dataclass
class LoadedRun:
    """Everything inference needs from a run folder.

    Attributes:
        input_shape: ``(C, *spatial)`` of a preprocessed training image; every input must
            have it after preprocessing.
        trust: the calibrator (applied to every probability this module returns), the refer
            band and the out-of-distribution score the run fitted on validation.
    """

    run_dir: Path
    config: RunConfig
    model: torch.nn.Module
    preprocess: Any
    class_names: list[str]
    threshold: float
    input_shape: tuple[int, ...] | None
    device: torch.device
    trust: TrustRule = TrustRule()

    @property
    def task(self) -> Task:
        """The run's task kind (``medlens.tasks``), which answers every per-task question."""
        return task_of(self.config)


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """Read ``config.yaml``, ``model.pt``, ``preprocessing.json`` and ``labels.json`` (and,
    when the run has them, ``calibration.json`` and ``ood.npz``) and build the network on
    ``device`` (default CUDA when available), in eval mode, in the memory layout it runs
    fastest in there (``medlens.models.memory_format``: channels-last on the CPU where the
    model registry records it measured faster for inference).

    Raises:
        InputError: naming the missing, unreadable or inconsistent file of the run folder.
    """
    from medlens.models import model_from_config
    from medlens.models.memory_format import to_preferred_memory_format
    from medlens.preprocess.pipeline import load_pipeline

    run_dir = Path(run_dir)
    require_files(run_dir, (layout.CONFIG, layout.MODEL, layout.PREPROCESSING, layout.LABELS))
    config = read_run_config(run_dir)
    labels = read_decision_labels(run_dir)
    state = load_checkpoint(run_dir / layout.MODEL)
    try:
        model = model_from_config(dict(state.get("model_config") or {}))
        model.load_state_dict(state["model"])
    except MedlensError:
        raise
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(
            run_dir / layout.MODEL,
            f"weights do not fit the recorded model ({type(exc).__name__})",
        ) from None
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev).eval()
    to_preferred_memory_format(model, dev, "inference")
    shape = state.get("input_shape")
    return LoadedRun(
        run_dir=run_dir,
        config=config,
        model=model,
        preprocess=load_pipeline(run_dir / layout.PREPROCESSING),
        class_names=list(labels["class_names"]),
        threshold=float(labels["threshold"]),
        input_shape=tuple(int(v) for v in shape) if shape else None,
        device=dev,
        trust=read_trust_rule(run_dir, labels),
    )


def prepare_input(run: LoadedRun, image: Image) -> np.ndarray:
    """The run's preprocessing replayed on ``image``, checked for what the model can take.

    Raises:
        InputError: naming ``image.source`` when the result has NaN/inf values or a shape
            other than the training images' ``run.input_shape``.
    """
    x = run.preprocess(image).array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputError(image.source, "image contains NaN or infinite values")
    if run.input_shape is not None and tuple(x.shape) != run.input_shape:
        raise InputError(
            image.source,
            f"after preprocessing the image is {tuple(x.shape)} (channels, *spatial), but the "
            f"model was trained on {run.input_shape}; add a resize to the run's preprocessing",
        )
    return x


def _logits_and_features(
    model: torch.nn.Module, tensor: torch.Tensor, features: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The logits, and the pooled penultimate features from the same forward pass when asked
    and the network has them (a ``Classifier``; an ONNX engine has not)."""
    net: Any = model
    if features and hasattr(net, "forward_features") and hasattr(net, "forward_head"):
        feature_map = net.forward_features(tensor)
        pooled = net.forward_head(feature_map, pre_logits=True).flatten(1)
        return net.forward_head(feature_map), pooled
    return model(tensor), None


@torch.no_grad()
def predict_with_features(
    run: LoadedRun,
    arrays: list[np.ndarray],
    batch_size: int = 64,
    feature_model: torch.nn.Module | None = None,
    sources: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Calibrated class probabilities ``(N, K)`` of preprocessed arrays and, when the run has
    an out-of-distribution score, their pooled penultimate features ``(N, D)`` (else None).

    The probabilities come from ``run.model`` (either engine; with flip TTA when the run used
    it), then the run's calibrator. The features come from the same pass when ``run.model``
    is a PyTorch classifier, otherwise from ``feature_model`` (the run's PyTorch network
    behind an ONNX engine). ``sources`` name the inputs in errors (default: their index).

    Raises:
        InputError: naming the run's ``model.pt`` when the network gives NaN or infinite
            outputs (``check_finite_outputs``).
    """
    want = run.trust.ood is not None
    names = input_names(sources, len(arrays))
    out: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    for start in range(0, len(arrays), batch_size):
        tensor = torch.from_numpy(np.stack(arrays[start : start + batch_size])).to(run.device)
        logits, pooled = _logits_and_features(run.model, tensor, want)
        batch_names = names[start : start + batch_size]
        check_finite_outputs(run, logits, batch_names)
        probs = torch.softmax(logits.float(), dim=1)
        if run.config.train.tta_flip:
            flipped = run.model(torch.flip(tensor, dims=(-1,)))
            check_finite_outputs(run, flipped, [f"{name} (flipped)" for name in batch_names])
            probs = 0.5 * (probs + torch.softmax(flipped.float(), dim=1))
        out.append(probs.cpu().numpy())
        if want and pooled is None:
            other = feature_model if feature_model is not None else run.model
            _, pooled = _logits_and_features(other, tensor.to(_device_of(other)), True)
            if pooled is None:
                raise InputError(run.run_dir, "its network gives no features for the ood score")
        if pooled is not None:
            feats.append(pooled.float().cpu().numpy())
    raw = np.concatenate(out) if out else np.zeros((0, len(run.class_names)))
    probs_out = run.trust.calibrator.transform(raw) if len(raw) else raw
    if run.trust.ood is None:
        return probs_out, None
    return probs_out, np.concatenate(feats) if feats else np.zeros((0, run.trust.ood.dims))


def check_finite_outputs(run: LoadedRun, outputs: torch.Tensor, names: Sequence[str]) -> None:
    """Refuse a forward pass with NaN or infinite outputs, before any softmax or calibrator
    hides where they came from (the inputs were checked finite by ``prepare_input``, so the
    network is at fault: corrupt weights, an overflow).

    Args:
        outputs: the network's outputs ``(B, ...)``.
        names: what to call each of the ``B`` inputs in the error.

    Raises:
        InputError: naming ``run.run_dir / model.pt`` and the first input concerned.
    """
    finite = torch.isfinite(outputs).flatten(1).all(dim=1)
    if bool(finite.all()):
        return
    first = int(torch.nonzero(~finite)[0, 0])
    raise InputError(
        run.run_dir / layout.MODEL,
        f"the network produced non-finite outputs (NaN/inf) for {names[first]}; its weights "
        "may be corrupt or it overflows on this input",
    )


def input_names(sources: Sequence[str] | None, n: int, what: str = "input") -> list[str]:
    """``sources``, or where one is missing or empty ``"<what> i of the n given (counting
    from 0)"``: how errors name ``n`` inputs."""
    given = list(sources) if sources is not None else []
    return [
        given[i]
        if i < len(given) and given[i]
        else f"{what} {i} of the {n} given (counting from 0)"
        for i in range(n)
    ]


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def predict_arrays(
    run: LoadedRun,
    arrays: list[np.ndarray],
    batch_size: int = 64,
    sources: Sequence[str] | None = None,
) -> np.ndarray:
    """Calibrated class probabilities ``(N, K)`` for preprocessed arrays (see
    ``prepare_input``): the engine's softmax (and flip TTA when the run used it), then the
    run's calibrator (``calibration.json``), whichever engine ran.

    Raises:
        InputError: naming the run's ``model.pt`` and the input (``sources``, default its
            index) when the network gives NaN or infinite outputs.
    """
    probs, _ = predict_with_features(
        dataclasses.replace(run, trust=dataclasses.replace(run.trust, ood=None)),
        arrays,
        batch_size,
        sources=sources,
    )
    return probs


def predict_images(run: LoadedRun, images: Iterable[Image], batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(N, K)`` for raw images, with the run's preprocessing replayed.

    Raises:
        InputError: naming an image (``Image.source``) that cannot be used, or the run's
            ``model.pt`` when the network gives NaN or infinite outputs for an image.
    """
    images = list(images)
    arrays = [prepare_input(run, image) for image in images]
    return predict_arrays(run, arrays, batch_size, sources=[str(im.source) for im in images])
