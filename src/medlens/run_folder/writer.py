"""Writing the files of a run folder: every file by its name in ``layout``, atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medlens.config import RunConfig
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.run_folder import layout


class RunWriter:
    """The files of one run folder being built (its staging folder).

    Example:
        >>> writer = RunWriter(stage)  # doctest: +SKIP
        >>> writer.config(config)
        >>> writer.labels(["normal", "pneumonia"], threshold=0.42, threshold_method="youden")
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        """A file or sub-folder of the run (``layout.MASKS``, ``layout.PLOTS``...)."""
        return self.folder / name

    def config(self, config: RunConfig | Mapping[str, Any]) -> Path:
        """``config.yaml``: the resolved config, every default written out."""
        if isinstance(config, RunConfig):
            text = config.to_yaml()
        else:
            import yaml

            text = yaml.safe_dump(dict(config), sort_keys=False)
        return write_atomic(self.path(layout.CONFIG), text)

    def preprocessing(self, pipeline: Any) -> Path:
        """``preprocessing.json``: the deterministic part of ``pipeline`` (a ``Compose``)."""
        from medlens.preprocess.pipeline import save_pipeline

        return save_pipeline(pipeline, self.path(layout.PREPROCESSING))

    def labels(self, class_names: Sequence[str], threshold: float | None, **extra: Any) -> Path:
        """``labels.json``: the class names, the decision threshold and what else applies
        (``threshold_method``, ``postprocess``...)."""
        document = {"class_names": list(class_names), "threshold": threshold, **extra}
        return write_json_atomic(self.path(layout.LABELS), document)

    def json(self, name: str, document: Any) -> Path:
        """A JSON file of the run (``layout.METRICS``, ``layout.DATA_SUMMARY``...)."""
        return write_json_atomic(self.path(name), document)

    def metrics(self, document: Mapping[str, Any]) -> Path:
        """``metrics.json``: every metric per split; ``task`` names the run's task."""
        return self.json(layout.METRICS, dict(document))

    def arrays(self, name: str, arrays: Mapping[str, Any]) -> Path:
        """An ``.npz`` file of the run (``layout.OOD``): named numpy arrays, uncompressed."""
        import io

        import numpy as np

        buffer = io.BytesIO()
        payload: dict[str, Any] = {key: np.asarray(value) for key, value in arrays.items()}
        np.savez(buffer, allow_pickle=False, **payload)
        return write_atomic(self.path(name), buffer.getvalue())

    def table(self, name: str, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Path:
        """A CSV table of the run (``layout.PREDICTIONS``, ``layout.HISTORY``...)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        return write_atomic(self.path(name), frame.to_csv(index=False))

    def checkpoint(self, state: Mapping[str, Any], name: str = layout.MODEL) -> Path:
        """``model.pt`` (or another checkpoint): ``state`` saved with torch."""
        from medlens.run_folder.checkpoint import save_checkpoint

        return save_checkpoint(dict(state), self.path(name))

    def estimator(self, estimator: Any) -> Path:
        """``model.joblib``: a fitted scikit-learn estimator."""
        import io

        import joblib

        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        return write_atomic(self.path(layout.ESTIMATOR), buffer.getvalue())
