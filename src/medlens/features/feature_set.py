"""``FeatureSet``: a feature matrix with the cases it describes, saved as one ``.npz``."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.io_utils import write_atomic

FORMAT = "medlens-features"
VERSION = 1
_ARRAYS = ("features", "case_ids", "labels", "splits", "feature_names", "class_names", "meta")


@dataclass
class FeatureSet:
    """One row of features per case.

    Attributes:
        features: ``(N, D)`` float32.
        case_ids: the ``Case.case_id`` of each row.
        labels: ``(N,)`` int64 class indices, ``-1`` for unlabelled cases.
        splits: ``"train" | "val" | "test"`` per row, ``""`` when the source has none.
        feature_names: ``D`` names (``deep_0000``... or ``firstorder_mean``...).
        class_names: the label map of ``labels``.
        meta: JSON-serialisable provenance (source, model, run, preprocessing, skipped files).

    Example:
        >>> fs = FeatureSet.load("features.npz")
        >>> train = fs.subset(fs.split_mask("train"))
        >>> make_feature_pipeline("anova", "svm_rbf").fit(train.features, train.labels)
    """

    features: np.ndarray
    case_ids: list[str]
    labels: np.ndarray
    splits: list[str]
    feature_names: list[str]
    class_names: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.case_ids = [str(c) for c in self.case_ids]
        self.splits = [str(s) for s in self.splits]
        self.feature_names = [str(n) for n in self.feature_names]
        self.class_names = [str(n) for n in self.class_names]
        if self.features.ndim != 2:
            raise ValueError(f"features must be (N, D), got {self.features.shape}")
        n, d = self.features.shape
        lengths = {"case_ids": len(self.case_ids), "labels": len(self.labels)}
        lengths["splits"] = len(self.splits)
        for name, length in lengths.items():
            if length != n:
                raise ValueError(f"{name} has {length} entries for {n} feature rows")
        if len(self.feature_names) != d:
            raise ValueError(f"{len(self.feature_names)} feature names for {d} columns")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def split_mask(self, *names: str) -> np.ndarray:
        """Boolean row mask of the cases in any of the splits ``names``."""
        return np.isin(np.asarray(self.splits, dtype=str), names)

    def subset(self, rows: np.ndarray) -> FeatureSet:
        """The rows selected by a boolean mask or an index array."""
        index = np.arange(len(self))[rows]
        return FeatureSet(
            self.features[index],
            [self.case_ids[i] for i in index],
            self.labels[index],
            [self.splits[i] for i in index],
            list(self.feature_names),
            list(self.class_names),
            dict(self.meta),
        )

    def save(self, path: str | Path) -> Path:
        """Write an uncompressed ``.npz`` atomically (temp file + rename); no pickles inside."""
        buffer = io.BytesIO()
        meta = {"format": FORMAT, "version": VERSION, **self.meta}
        np.savez(
            buffer,
            features=self.features,
            case_ids=np.asarray(self.case_ids, dtype=str),
            labels=self.labels,
            splits=np.asarray(self.splits, dtype=str),
            feature_names=np.asarray(self.feature_names, dtype=str),
            class_names=np.asarray(self.class_names, dtype=str),
            meta=np.asarray(json.dumps(meta)),
        )
        return write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> FeatureSet:
        """Read a file written by ``save``.

        Raises:
            InputError: naming ``path`` when it is missing, not an ``.npz``, lacks an array,
                or its arrays disagree in length.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in _ARRAYS if k not in archive.files]
                if missing:
                    raise InputError(path, f"not a medlens feature file (no {', '.join(missing)})")
                arrays = {k: archive[k] for k in _ARRAYS}
            meta = json.loads(str(arrays["meta"]))
        except InputError:
            raise
        except FileNotFoundError:
            raise InputError(path, "feature file not found") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise InputError(
                path, f"cannot be read as a feature .npz ({type(exc).__name__})"
            ) from None
        if not isinstance(meta, dict) or meta.pop("format", None) != FORMAT:
            raise InputError(path, "not a medlens feature file (wrong format tag)")
        version = meta.pop("version", None)
        if not isinstance(version, int) or version > VERSION:
            raise InputError(path, f"unsupported feature file version {version!r}")
        try:
            return cls(
                arrays["features"],
                arrays["case_ids"].tolist(),
                arrays["labels"],
                arrays["splits"].tolist(),
                arrays["feature_names"].tolist(),
                arrays["class_names"].tolist(),
                meta,
            )
        except ValueError as exc:
            raise InputError(path, f"inconsistent arrays: {exc}") from None
