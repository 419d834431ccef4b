"""Deep features: the pooled penultimate activations of a medlens classifier."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from medlens.config import DataConfig
from medlens.data.image import Image
from medlens.data.validation import require_finite
from medlens.errors import ConfigError, InputError
from medlens.features.cases import PreparedCases, case_columns, open_cases
from medlens.features.feature_set import FeatureSet

ImageItem = torch.Tensor | np.ndarray


def extract_deep_features(
    model: torch.nn.Module,
    images: Iterable[Any] | Dataset | DataLoader,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> np.ndarray:
    """``forward_head(forward_features(x), pre_logits=True)`` for every image: ``(N, D)``.

    Runs in eval mode under ``torch.no_grad`` (the model's train/eval mode is restored
    afterwards), in batches, with a tqdm progress bar.

    Args:
        model: a medlens ``Classifier`` (``D = model.num_features``) or any module with
            ``forward_features`` and ``forward_head(x, pre_logits=True)`` (timm's contract).
        images: preprocessed images ``(C, *spatial)`` as tensors or arrays, or a ``Dataset``
            of them (items may be tuples whose first element is the image, as
            ``CaseDataset``'s), or a ``DataLoader`` of batches. Order is kept.
        batch_size: images per forward pass (ignored for a ``DataLoader``).
        device: where to run; default the model's device. The model is moved there.
        progress: show the progress bar.

    Returns:
        float32 ``(N, D)``; ``(0, D)`` when there is no image.

    Raises:
        ConfigError: a model without ``forward_features``/``forward_head`` (a segmenter).
        InputError: images of different shapes in one batch, or NaN/inf features.

    Example:
        >>> model = create_model("small_cnn", input_size=28)
        >>> extract_deep_features(model, [torch.zeros(1, 28, 28)] * 3).shape
        (3, 64)
    """
    if batch_size < 1:
        raise ConfigError("features.batch_size", f"must be at least 1, got {batch_size}")
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise ConfigError(
            "model.name",
            f"{type(model).__name__} has no forward_features/forward_head; "
            "deep features come from a classifier",
        )
    net: Any = model  # the timm contract is duck-typed
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    was_training = model.training
    model.eval()
    total = _batch_count(images, batch_size)
    out: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for batch in tqdm(
                _batches(images, batch_size), total=total, desc="features", disable=not progress
            ):
                x = batch.to(dev, dtype=torch.float32, non_blocking=True)
                pooled = net.forward_head(net.forward_features(x), pre_logits=True)
                out.append(pooled.flatten(1).float().cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, int(net.num_features)), dtype=np.float32)
    features = np.concatenate(out).astype(np.float32, copy=False)
    require_finite(features, "<model>", "deep feature values")
    return features


def _batch_count(images: Any, batch_size: int) -> int | None:
    if isinstance(images, DataLoader):
        return len(images) if hasattr(images.dataset, "__len__") else None
    if hasattr(images, "__len__"):
        return math.ceil(len(images) / batch_size)
    return None


def _first(item: Any) -> ImageItem:
    return item[0] if isinstance(item, tuple | list) else item


def _stack(items: Sequence[Any]) -> torch.Tensor:
    tensors = [torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x) for x in items]
    shapes = sorted({tuple(t.shape) for t in tensors})
    if len(shapes) > 1:
        raise InputError(
            "<batch>",
            f"images differ in shape {shapes}; add a resize (or crop_or_pad) to the preprocessing",
        )
    return torch.stack(tensors)


def _batches(images: Any, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(images, DataLoader):
        for batch in images:
            yield torch.as_tensor(_first(batch))
        return
    if isinstance(images, Dataset) and hasattr(images, "__len__"):
        loader = DataLoader(
            images,
            batch_size=batch_size,
            shuffle=False,
            collate_fn=lambda items: _stack([_first(i) for i in items]),
        )
        yield from loader
        return
    chunk: list[Any] = []
    for item in images:
        chunk.append(_first(item))
        if len(chunk) == batch_size:
            yield _stack(chunk)
            chunk = []
    if chunk:
        yield _stack(chunk)


def deep_feature_set(
    features: np.ndarray, cases: list, class_names: list[str], meta: dict[str, Any]
) -> FeatureSet:
    """A ``FeatureSet`` of deep features (``deep_0000``...) for ``cases``, in their order."""
    case_ids, labels, splits = case_columns(cases)
    names = [f"deep_{i:04d}" for i in range(features.shape[1])]
    return FeatureSet(features, case_ids, labels, splits, names, list(class_names), meta)


def features_from_model(
    name: str,
    data: DataConfig,
    preprocess: Sequence[Mapping[str, Any]] | None = None,
    pretrained: str | None = None,
    init: str | Path | None = None,
    seed: int = 0,
    splits: Sequence[str] | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Deep features from an untrained network ``create_model(name, ...)``: ImageNet
    weights with ``pretrained="imagenet"``, a checkpoint with ``init``, or a seeded random
    initialisation (random-projection features, a baseline).

    Args:
        name: a registered classifier (``small_cnn``, ``resnet18``...).
        data: the data source.
        preprocess: deterministic transform specs (``[{"name": "fixed_scale", ...}]``);
            default: ``medlens.preprocess.specs.default_preprocess`` of the first image.
        pretrained: ``"imagenet"`` or None.
        init: a medlens checkpoint to load.
        seed: seeds the random initialisation.
        splits, batch_size, device, progress: as in ``features_from_run``.

    Raises:
        ConfigError: a random transform in ``preprocess`` or a bad model argument.
        InputError: unreadable data.
    """
    from medlens.models import create_model
    from medlens.preprocess.pipeline import build_pipeline
    from medlens.preprocess.specs import preprocess_specs

    case_set, cases, skipped = open_cases(data, splits)
    first = case_set.load(cases[0])
    specs = preprocess_specs(preprocess or [], first)
    pipeline = build_pipeline(specs)
    if not pipeline.is_deterministic:
        raise ConfigError("preprocess", "random transforms belong under augment, not preprocess")
    sample = pipeline(first)

    def prepare(image: Image) -> np.ndarray:
        array = pipeline(image).array
        require_finite(np.asarray(array), image.source, "values after preprocessing")
        return array

    torch.manual_seed(seed)
    model = create_model(
        name,
        in_channels=sample.num_channels,
        num_classes=max(len(case_set.class_names), 1),
        spatial_dims=sample.spatial_dims,
        pretrained=pretrained,
        init=init,
        input_size=int(min(sample.spatial_shape)),
    )
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dataset = PreparedCases(case_set, cases, prepare)
    features = extract_deep_features(model, dataset, batch_size, dev, progress)
    meta = {
        "extractor": "deep",
        "model_config": dict(model.config),
        "seed": seed,
        "data": str(data.path),
        "preprocess": pipeline.to_config(),
        "skipped_files": skipped,
    }
    return deep_feature_set(features, cases, case_set.class_names, meta)
