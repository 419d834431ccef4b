"""``CaseDataset``: the cases of a source as a PyTorch dataset, reproducibly augmented."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medlens.data.case import Case, CaseSet
from medlens.data.image import Image
from medlens.data.validation import require_finite

ImageTransform = Callable[[Image, np.random.Generator], Image]


class CaseDataset(Dataset):
    """Items ``(image float32 tensor (C, *spatial), label int, index int)``.

    The random generator for item ``i`` in epoch ``e`` is ``np.random.default_rng([seed, e, i])``,
    so augmentation depends on neither the worker count nor the order items are drawn in.
    Call ``set_epoch`` before each epoch (with ``persistent_workers`` the workers keep the
    epoch they were started with, so recreate the loader's iterator after ``set_epoch``).
    Unlabelled cases give label ``-1``.

    Args:
        case_set: the source that loads pixels.
        cases: the cases of this dataset (e.g. one split).
        transform: ``(Image, Generator) -> Image`` (preprocessing and augmentation), or None.
        seed: base seed of the per-item generators.

    Raises:
        InputError: (from ``__getitem__``) naming the case's file when loading fails or the
            transformed image holds NaN or infinite values.
    """

    def __init__(
        self,
        case_set: CaseSet,
        cases: Sequence[Case],
        transform: ImageTransform | None = None,
        seed: int = 0,
    ) -> None:
        self.case_set = case_set
        self.cases = list(cases)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    @property
    def labels(self) -> np.ndarray:
        """Label of every item (``-1`` when unlabelled), for samplers and class weights."""
        return np.array([-1 if c.label is None else c.label for c in self.cases], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        case = self.cases[index]
        image = self.case_set.load(case)
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            image = self.transform(image, rng)
        array = np.asarray(image.array)
        require_finite(array, case.source or case.case_id, "values after preprocessing")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        label = -1 if case.label is None else int(case.label)
        return tensor, label, int(index)
