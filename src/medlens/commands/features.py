"""``medlens features``: a feature file from a run folder, a model name, or handcrafted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medlens.errors import ConfigError, InputError
from medlens.features.feature_set import FeatureSet

HANDCRAFTED = "handcrafted"


def extract_features_command(
    source: str | Path,
    data_config: str | Path | None,
    out: str | Path,
    splits: Sequence[str] | None = None,
    pretrained: str | None = None,
    bins: int = 32,
    bin_width: float | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Extract features and write them to ``out`` (``.npz``, see ``FeatureSet``).

    Args:
        source: a finished run folder (its model, weights and preprocessing), a registered
            model name (``resnet18``: ImageNet weights with ``pretrained="imagenet"``, else
            the config's ``model.pretrained``/``model.init``, else a seeded random
            initialisation), or ``"handcrafted"`` (radiomics-style features, whole image).
        data_config: a run config YAML whose ``data`` (and, for a model name or
            ``handcrafted``, ``preprocess`` and ``seed``) are used; optional for a run
            folder, which defaults to its own data.
        out: the ``.npz`` to write (atomically).
        splits: only these splits; default every case.
        pretrained: ``"imagenet"`` for a model name.
        bins, bin_width: gray-level discretisation of handcrafted texture features.
        batch_size, device, progress: as in ``extract_deep_features``.

    Returns:
        The ``FeatureSet`` that was written.

    Raises:
        InputError: ``source`` is neither a run folder nor a model name, or bad data.
        ConfigError: a model name or ``handcrafted`` without ``data_config``, or a bad config.
    """
    from medlens.features.deep import features_from_model
    from medlens.features.handcrafted_set import handcrafted_features_from_data
    from medlens.inference.features import features_from_run
    from medlens.models import MODELS
    from medlens.tasks import load_config

    config = load_config(data_config) if data_config is not None else None
    text = str(source)
    if Path(text).is_dir():
        features = features_from_run(
            text,
            data=config.data if config is not None else None,
            splits=splits,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    elif text == HANDCRAFTED or text in MODELS:
        if config is None:
            raise ConfigError("--config", f"{text} features need a config that names the data")
        specs = [{"name": s.name, **s.params} for s in config.preprocess]
        if text == HANDCRAFTED:
            features = handcrafted_features_from_data(
                config.data, specs, splits, bins=bins, bin_width=bin_width, progress=progress
            )
        else:
            features = features_from_model(
                text,
                config.data,
                specs or None,
                pretrained=pretrained or config.model.pretrained,
                init=None if pretrained else config.model.init,
                seed=config.seed,
                splits=splits,
                batch_size=batch_size,
                device=device,
                progress=progress,
            )
    else:
        raise InputError(
            text,
            f"is neither a run folder nor a model name ({', '.join(MODELS.names())}) "
            f"nor {HANDCRAFTED!r}",
        )
    features.save(out)
    return features
