"""Deep features of a finished run: its own preprocessing and trained weights applied to
every case of a data source (the ``medlens features RUN`` verb)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medlens.config import DataConfig
from medlens.features.cases import PreparedCases, open_cases
from medlens.features.deep import deep_feature_set, extract_deep_features
from medlens.features.feature_set import FeatureSet
from medlens.inference.loaded_run import load_run, prepare_input


def features_from_run(
    run_dir: str | Path,
    data: DataConfig | None = None,
    splits: Sequence[str] | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Deep features of every case of a run's data (or of ``data``), through the run's
    own preprocessing (``preprocessing.json``) and trained weights.

    Args:
        run_dir: a finished run folder.
        data: another data source; default the run's ``config.data``.
        splits: only these splits (``("test",)``); default every case.
        batch_size: images per forward pass.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        progress: show the progress bar.

    Raises:
        InputError: an incomplete run folder, unreadable data, or an image whose
            preprocessed shape differs from the training images'.
    """
    run = load_run(run_dir, device)
    data_cfg = data if data is not None else run.config.data
    case_set, cases, skipped = open_cases(data_cfg, splits)
    dataset = PreparedCases(case_set, cases, lambda image: prepare_input(run, image))
    features = extract_deep_features(run.model, dataset, batch_size, run.device, progress)
    meta = {
        "extractor": "deep",
        "run": str(run_dir),
        "model_config": dict(getattr(run.model, "config", {})),
        "data": str(data_cfg.path),
        "preprocess": run.preprocess.to_config(),
        "skipped_files": skipped,
    }
    return deep_feature_set(features, cases, case_set.class_names, meta)
