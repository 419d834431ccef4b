"""Starting a model from a medlens checkpoint: match tensors by name and shape, report the rest."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from medlens.errors import InputError
from medlens.models.channels import adapt_input_channels
from medlens.models.classifier import Classifier
from medlens.models.segmenter import Segmenter

logger = logging.getLogger(__name__)

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def load_init_weights(model: Classifier | Segmenter, path: str | Path) -> dict[str, Any]:
    """Load the tensors of a checkpoint that fit ``model``, by name and shape.

    The checkpoint is a torch file holding either a medlens checkpoint (a dict with
    ``"model"``, the state_dict, and ``"model_config"``) or a raw state_dict. Tensors of the
    classifier head whose shape differs (another ``num_classes``) keep their fresh
    initialisation; a first convolution trained on another number of input channels is adapted
    (summed to one channel, repeated to more).

    Returns:
        A report: ``path``, ``source_model`` (the checkpoint's model name, if it says),
        ``loaded`` (keys taken, adapted ones included), ``adapted``, ``skipped_head``,
        ``skipped_shape`` (other keys whose shape differs), ``missing`` (model keys absent from
        the checkpoint) and ``unexpected`` (checkpoint keys the model lacks).

    Raises:
        InputError: the file is missing or unreadable, or fewer than half of the backbone
            tensors (or of their values) match: a checkpoint of another architecture.
    """
    path = Path(path)
    state, source_config = _read_checkpoint(path)
    target = model.state_dict()
    head_keys = _head_keys(model)
    first_conv_key = _first_conv_weight_key(model)
    report: dict[str, Any] = {
        "path": str(path),
        "source_model": source_config.get("name"),
        "loaded": [],
        "adapted": [],
        "skipped_head": [],
        "skipped_shape": [],
        "missing": [k for k in target if k not in state],
        "unexpected": [k for k in state if k not in target],
    }
    for key, current in target.items():
        if key not in state:
            continue
        value = state[key]
        if value.shape == current.shape:
            target[key] = value.to(current.dtype)
        elif key == first_conv_key and _differs_in_channels_only(value, current):
            target[key] = adapt_input_channels(value.to(current.dtype), current.shape[1])
            report["adapted"].append(key)
        else:
            report["skipped_head" if key in head_keys else "skipped_shape"].append(key)
            continue
        report["loaded"].append(key)

    backbone = [k for k in target if k not in head_keys]
    matched = [k for k in report["loaded"] if k not in head_keys]
    matched_values = sum(target[k].numel() for k in matched)
    # Counting values too: BatchNorm vectors match between a 2D and a 3D net, kernels do not.
    if 2 * len(matched) < len(backbone) or 2 * matched_values < sum(
        target[k].numel() for k in backbone
    ):
        source = f" (a {report['source_model']} checkpoint)" if report["source_model"] else ""
        name = model.config.get("name", type(model).__name__)
        raise InputError(
            path,
            f"only {len(matched)} of the {len(backbone)} backbone tensors of {name} match by name "
            f"and shape, holding {matched_values} of its values{source}: the checkpoint holds "
            "another architecture",
        )
    model.load_state_dict(target)
    logger.info(
        "init from %s: loaded %d tensors (%d adapted), fresh head %s, skipped %s, missing %s",
        path, len(report["loaded"]), len(report["adapted"]), report["skipped_head"],
        report["skipped_shape"], report["missing"],
    )  # fmt: skip
    return report


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise InputError(path, "init checkpoint not found")
    obj = load_weights_only(path)
    config: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        state = obj["model"]
        config = obj.get("model_config") or {}
    else:
        state = obj
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise InputError(
            path, "holds neither a medlens checkpoint ('model', 'model_config') nor a state_dict"
        )
    return {_strip_wrappers(k): v for k, v in state.items()}, dict(config)


def load_weights_only(path: Path) -> Any:
    """``torch.load`` that unpickles tensors, containers and numpy values, never arbitrary code."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        foreign = _foreign_globals(path)
        if foreign:
            raise InputError(
                path,
                f"holds pickled Python objects ({', '.join(foreign)}) besides tensors and numpy "
                "values; medlens reads only weights-safe checkpoints",
            ) from exc
        reason = str(exc).splitlines()[0]
        raise InputError(
            path, f"not a readable torch checkpoint (UnpicklingError: {reason})"
        ) from exc
    # zip and torch errors alike mean an unreadable file
    except Exception as exc:
        raise InputError(
            path, f"not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def _numpy_globals() -> list[Any]:
    """The numpy types a trainer's checkpoint may hold (a numpy threshold, a metrics history)."""
    import numpy as np
    from numpy import dtypes

    multiarray = np._core.multiarray  # type: ignore[attr-defined]
    dtype_classes = [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, *dtype_classes]


def _foreign_globals(path: Path) -> list[str]:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint at all: the caller reports it as unreadable
        return []
    return [name for name in names if name.split(".")[0] not in ("numpy", "_codecs")]


def _strip_wrappers(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _head_keys(model: Classifier | Segmenter) -> set[str]:
    head_tensors = {id(t) for t in (*model.head.parameters(), *model.head.buffers())}
    named = (*model.named_parameters(), *model.named_buffers())
    return {name for name, tensor in named if id(tensor) in head_tensors}


def _first_conv_weight_key(model: Classifier | Segmenter) -> str | None:
    weight = model.first_conv().weight
    return next((name for name, p in model.named_parameters() if p is weight), None)


def _differs_in_channels_only(source: torch.Tensor, target: torch.Tensor) -> bool:
    if source.dim() != target.dim() or source.dim() < 3:
        return False
    return source.shape[0] == target.shape[0] and source.shape[2:] == target.shape[2:]
