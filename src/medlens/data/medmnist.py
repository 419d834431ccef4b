"""MedMNIST ``.npz`` files (v2/v3, 2D and 3D, any size) as a case source."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlens.data.case import Case
from medlens.data.image import Image
from medlens.data.medmnist_catalog import MEDMNIST_CATALOG, flag_from_filename
from medlens.data.medmnist_download import download_medmnist
from medlens.data.validation import first_line
from medlens.errors import ConfigError, InputError

__all__ = ["SPLITS", "MedMNISTArrays", "MedMNISTSource", "download_medmnist", "load_medmnist_npz"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MedMNISTArrays:
    """The six official arrays of a MedMNIST file.

    Attributes:
        path: the ``.npz`` file.
        images: split -> uint8 images ``(N, H, W)`` (grey), ``(N, H, W, 3)`` (RGB) or
            ``(N, D, H, W)`` (3D), values 0..255.
        labels: split -> int64 class indices ``(N,)``.
        layout: ``"grey"``, ``"rgb"`` or ``"volume"``.
    """

    path: Path
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    layout: str

    @property
    def flag(self) -> str | None:
        """The official dataset name when the file name is an official one."""
        return flag_from_filename(self.path.name)

    def as_source(self, class_names: list[str] | None = None) -> MedMNISTSource:
        """These arrays as a ``MedMNISTSource`` (no second read of the file)."""
        return MedMNISTSource(self, class_names)


def load_medmnist_npz(path: str | Path) -> MedMNISTArrays:
    """Read and validate a MedMNIST ``.npz`` (keys ``{train,val,test}_{images,labels}``).

    Raises:
        InputError: naming the file and what is wrong: not an npz, a missing key, images of
            different shapes between splits, label counts that differ from image counts,
            multi-label labels, or values outside 0..255.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            for split in SPLITS:
                for kind in ("images", "labels"):
                    if f"{split}_{kind}" not in keys:
                        raise InputError(
                            path,
                            f"is missing the array '{split}_{kind}' "
                            f"(it has: {', '.join(sorted(keys))})",
                        )
            raw = {key: archive[key] for key in keys if key.endswith(("_images", "_labels"))}
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"cannot be read as an .npz archive ({first_line(exc)})") from None
    images = {s: _images(path, s, raw[f"{s}_images"]) for s in SPLITS}
    labels = {s: _labels(path, s, raw[f"{s}_labels"], len(images[s])) for s in SPLITS}
    layout = _layout(path, images["train"])
    for split in SPLITS:
        if images[split].shape[1:] != images["train"].shape[1:]:
            raise InputError(
                path,
                f"{split}_images are {images[split].shape[1:]} "
                f"but train_images are {images['train'].shape[1:]}",
            )
    return MedMNISTArrays(path=path, images=images, labels=labels, layout=layout)


def _images(path: Path, split: str, array: np.ndarray) -> np.ndarray:
    if array.ndim not in (3, 4):
        raise InputError(
            path, f"{split}_images has shape {array.shape}; expected (N, H, W[, 3]) or (N, D, H, W)"
        )
    if array.dtype == np.uint8:
        return array
    if (
        not np.issubdtype(array.dtype, np.number)
        or array.size
        and (array.min() < 0 or array.max() > 255 or not np.array_equal(array, np.round(array)))
    ):
        raise InputError(
            path, f"{split}_images must hold integers 0..255, found {array.dtype} values"
        )
    return array.astype(np.uint8)


def _labels(path: Path, split: str, array: np.ndarray, n_images: int) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] > 1:
        raise InputError(
            path,
            f"{split}_labels has {array.shape[1]} columns (multi-label); "
            "medlens reads one label per image",
        )
    flat = array.reshape(-1)
    if flat.shape[0] != n_images:
        raise InputError(path, f"{split}_labels holds {flat.shape[0]} labels for {n_images} images")
    if flat.size and (
        not np.issubdtype(flat.dtype, np.number)
        or flat.min() < 0
        or not np.array_equal(flat, np.round(flat))
    ):
        raise InputError(path, f"{split}_labels must be non-negative integers")
    return flat.astype(np.int64)


def _layout(path: Path, train: np.ndarray) -> str:
    if train.ndim == 3:
        return "grey"
    if train.shape[-1] == 3:
        return "rgb"
    if train.shape[1] == train.shape[2] == train.shape[3]:
        return "volume"
    raise InputError(
        path, f"train_images shape {train.shape} is neither (N, H, W, 3) nor cubic (N, D, H, W)"
    )


class MedMNISTSource:
    """A MedMNIST file as a ``CaseSet`` with the official train/val/test split.

    Case ids are ``"{split}/{index:06d}"``; ``load`` returns float32 ``(1, H, W)``,
    ``(3, H, W)`` or ``(1, D, H, W)`` with the stored values 0..255 unchanged (intensity
    scaling belongs to preprocessing) and spacing 1.0. Class names come from the official
    catalog when the file name is an official one, else ``"0", "1", ...``.

    Args:
        npz: the ``.npz`` path, or arrays already loaded with ``load_medmnist_npz``.
        class_names: override the class names (one per label index).

    Example:
        >>> source = MedMNISTSource("pneumoniamnist.npz")
        >>> image = source.load(source.cases[0])  # (1, 28, 28) float32, 0..255
    """

    def __init__(
        self, npz: str | Path | MedMNISTArrays, class_names: list[str] | None = None
    ) -> None:
        self.arrays = npz if isinstance(npz, MedMNISTArrays) else load_medmnist_npz(npz)
        self.path = self.arrays.path
        self.class_names = self._class_names(class_names)
        self.cases: list[Case] = [
            Case(
                case_id=f"{split}/{i:06d}",
                label=int(label),
                split=split,
                patient_id=f"{split}/{i:06d}",
                source=f"{self.path}#{split}_images[{i}]",
            )
            for split in SPLITS
            for i, label in enumerate(self.arrays.labels[split])
        ]

    def _class_names(self, given: list[str] | None) -> list[str]:
        n_labels = 1 + max(
            (int(lab.max()) for lab in self.arrays.labels.values() if lab.size), default=0
        )
        flag = self.arrays.flag
        if given is not None:
            names = list(given)
            if len(names) < n_labels:
                raise ConfigError(
                    "data.class_names",
                    f"{len(names)} names for labels 0..{n_labels - 1} in {self.path}",
                )
            return names
        if flag is not None and len(MEDMNIST_CATALOG[flag].class_names) >= n_labels:
            return list(MEDMNIST_CATALOG[flag].class_names)
        return [str(i) for i in range(n_labels)]

    def load(self, case: Case) -> Image:
        """The pixels of ``case`` as float32, channel first, values 0..255."""
        split, _, index = case.case_id.partition("/")
        images = self.arrays.images.get(split)
        if images is None or not index.isdigit() or int(index) >= len(images):
            raise InputError(
                case.source or self.path, f"case {case.case_id!r} is not in {self.path.name}"
            )
        pixels = images[int(index)]
        array = np.moveaxis(pixels, -1, 0) if self.arrays.layout == "rgb" else pixels[None]
        array = np.ascontiguousarray(array, dtype=np.float32)
        meta = {"format": "medmnist", "stored_dtype": "uint8", "split": split}
        return Image(array=array, spacing=(1.0,) * (array.ndim - 1), source=case.source, meta=meta)
