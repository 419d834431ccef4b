"""``CachedDataset``: the deterministic preprocessing of every case computed once (kept in
memory or in memory-mapped files on disk); the random augmentation still runs every epoch."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from medlens.data.case import Case, CaseSet
from medlens.data.dataset import CaseDataset
from medlens.data.image import Image
from medlens.data.validation import require_finite
from medlens.errors import ConfigError

CacheMode = Literal["memory", "disk"]
_INDEX = "index.npz"
_GROUPS = "groups.json"


def source_fingerprint(path: str | Path) -> str:
    """A digest of a data source's files: path, size and modification time of the file, or
    of every file under the folder, so a changed or added file changes it (no pixel is
    read)."""
    path = Path(path).resolve()
    digest = hashlib.sha256(str(path).encode())
    if path.is_file():
        stat = path.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    elif path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                rel = os.path.relpath(os.path.join(root, name), path)
                digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _file_stamp(source: str) -> str:
    try:
        stat = os.stat(source)
    except (OSError, ValueError):  # not a plain file (an entry of an .npz, a series folder)
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def cache_key(source_key: str, preprocess: Any, cases: Sequence[Case]) -> str:
    """The name of a disk cache: a hash of the source, the preprocessing config, the cases
    (ids, and size and modification time of each case's own file, so an image replaced
    behind a CSV manifest counts) and the medlens version (whose transforms computed the
    arrays)."""
    from medlens import __version__

    document = {
        "medlens": __version__,
        "source": source_key,
        "preprocess": preprocess.to_config(),
        "cases": [[c.case_id, _file_stamp(c.source)] for c in cases],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:24]


class _DiskStore:
    """Preprocessed arrays in one memory-mapped file per (dtype, shape), plus their geometry.

    Layout of ``<cache_dir>/<key>/``: ``groups.json`` (file, dtype, shape, count per group),
    ``g<k>.bin`` (the group's arrays, C order, back to back) and ``index.npz`` (per case: its
    group, its row, spacing in mm, affine). Written under a temporary name and renamed, so
    a half-built cache is never read.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.groups = json.loads((folder / _GROUPS).read_text())
        with np.load(folder / _INDEX) as index:
            self.group = index["group"]
            self.row = index["row"]
            self.spacing = index["spacing"]
            self.affine = index["affine"]
        self._maps: dict[int, np.memmap] = {}

    def __getstate__(self) -> dict[str, Any]:
        # A worker process maps the files itself rather than being sent their contents.
        return {**self.__dict__, "_maps": {}}

    def image(self, index: int, source: str) -> Image:
        g = int(self.group[index])
        if g not in self._maps:
            spec = self.groups[g]
            self._maps[g] = np.memmap(
                self.folder / spec["file"],
                dtype=np.dtype(spec["dtype"]),
                mode="r",
                shape=(spec["count"], *spec["shape"]),
            )
        array = np.array(self._maps[g][int(self.row[index])])  # a private copy, not a view
        dims = array.ndim - 1
        spacing = tuple(float(s) for s in self.spacing[index, :dims])
        affine = self.affine[index]
        return Image(
            array=array,
            spacing=spacing,
            affine=None if np.isnan(affine).any() else affine.copy(),
            source=source,
        )

    @classmethod
    def build(
        cls, folder: Path, case_set: CaseSet, cases: Sequence[Case], preprocess: Any
    ) -> _DiskStore:
        """Preprocess every case once, streaming the arrays to disk (memory stays flat)."""
        if (folder / _INDEX).is_file():
            return cls(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        stage = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        groups: dict[tuple[str, tuple[int, ...]], int] = {}
        counts: list[int] = []
        n = len(cases)
        group = np.zeros(n, dtype=np.int32)
        row = np.zeros(n, dtype=np.int64)
        spacing = np.full((n, 3), np.nan)
        affine = np.full((n, 4, 4), np.nan)
        handles: dict[int, Any] = {}
        try:
            for i, case in enumerate(cases):
                image = preprocess(case_set.load(case))
                array = np.ascontiguousarray(image.array)
                key = (array.dtype.str, tuple(array.shape))
                g = groups.setdefault(key, len(groups))
                if g == len(counts):
                    counts.append(0)
                    handles[g] = open(stage / f"g{g}.bin", "wb")  # noqa: SIM115
                handles[g].write(array.tobytes())
                group[i], row[i] = g, counts[g]
                counts[g] += 1
                spacing[i, : len(image.spacing)] = image.spacing
                if image.affine is not None:
                    affine[i] = image.affine
        finally:
            for handle in handles.values():
                handle.close()
        specs = [
            {"file": f"g{g}.bin", "dtype": dtype, "shape": list(shape), "count": counts[g]}
            for (dtype, shape), g in sorted(groups.items(), key=lambda item: item[1])
        ]
        (stage / _GROUPS).write_text(json.dumps(specs))
        np.savez(stage / _INDEX, group=group, row=row, spacing=spacing, affine=affine)
        try:
            os.rename(stage, folder)
        except OSError:  # another process (a DDP rank) finished the same cache first
            shutil.rmtree(stage, ignore_errors=True)
        return cls(folder)


class CachedDataset(CaseDataset):
    """A ``CaseDataset`` whose deterministic preprocessing runs once per case.

    Items are exactly those of ``CaseDataset(case_set, cases, transform, seed)`` with
    ``transform(image, rng) = augment(preprocess(image), rng)`` — the same tensors, bit for
    bit, for the same seed and epoch — but ``preprocess(load(case))`` is computed once:

    * ``memory``: kept in a dict as items are first drawn. DataLoader worker processes do not
      share their dicts, so with ``num_workers > 0`` call ``warm()`` before the loader is
      made: the workers then inherit the filled dict.
    * ``disk``: built once, when the dataset is made, under ``cache_dir/<key>`` where the key
      hashes ``source_key``, the preprocessing config, the case ids and the medlens version
      (another preprocessing or changed source files give another folder; old folders may be
      deleted at any time). Arrays are memory-mapped, so workers share the page cache; an
      image comes back with its array, spacing and affine (what transforms read), not the
      reader's ``meta``.

    Args:
        case_set: the source that loads pixels.
        cases: the cases of this dataset (e.g. one split).
        preprocess: the deterministic pipeline (``Image -> Image``, with ``to_config()``).
        augment: the random pipeline (``(Image, Generator) -> Image``), or None.
        seed: base seed of the per-item generators (see ``CaseDataset``).
        mode: ``memory`` or ``disk``.
        cache_dir: where disk caches live (required for ``disk``).
        source_key: identifies the source's contents, e.g. ``source_fingerprint(path)``.

    Raises:
        ConfigError: ``disk`` without a ``cache_dir``, or an unknown mode.
        InputError: (from loading) naming a case's file that cannot be read.
    """

    def __init__(
        self,
        case_set: CaseSet,
        cases: Sequence[Case],
        preprocess: Any,
        augment: Any | None = None,
        seed: int = 0,
        mode: CacheMode = "memory",
        cache_dir: str | Path | None = None,
        source_key: str = "",
    ) -> None:
        super().__init__(case_set, cases, transform=None, seed=seed)
        if mode not in ("memory", "disk"):
            raise ConfigError("data.cache", f"must be 'none', 'memory' or 'disk', got {mode!r}")
        self.preprocess = preprocess
        self.augment = augment
        self.mode = mode
        self.key = cache_key(source_key, preprocess, self.cases)
        self._memory: dict[int, Image] = {}
        self._disk: _DiskStore | None = None
        if mode == "disk":
            if cache_dir is None:
                raise ConfigError("data.cache", "a disk cache needs a cache folder")
            self.cache_path: Path | None = Path(cache_dir) / self.key
            self._disk = _DiskStore.build(self.cache_path, case_set, self.cases, preprocess)
        else:
            self.cache_path = None

    def warm(self) -> CachedDataset:
        """Preprocess every case now (memory mode; a disk cache is built on creation)."""
        for index in range(len(self.cases)):
            self.preprocessed(index)
        return self

    def preprocessed(self, index: int) -> Image:
        """The case's image after the deterministic preprocessing, from the cache."""
        case = self.cases[index]
        if self._disk is not None:
            return self._disk.image(index, case.source or case.case_id)
        image = self._memory.get(index)
        if image is None:
            image = self._memory[index] = self.preprocess(self.case_set.load(case))
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        case = self.cases[index]
        image = self.preprocessed(index)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            image = self.augment(image, rng)
        array = np.asarray(image.array)
        require_finite(array, case.source or case.case_id, "values after preprocessing")
        # A copy: the batch must never share memory with the cached array.
        tensor = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
        label = -1 if case.label is None else int(case.label)
        return tensor, label, int(index)
