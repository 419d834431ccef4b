"""Data layer: readers for every format, case sources, splits and the PyTorch dataset.

The names below import their module on first use (PEP 562), so ``medlens.data.image``,
which every transform imports, does not pull in pydicom, nibabel, pandas and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

from medlens.data.case import Case, CaseSet
from medlens.data.image import Image

_LAZY = {
    "CaseDataset": "dataset",
    "ImageFolderSource": "folder",
    "ManifestSource": "manifest",
    "MedMNISTArrays": "medmnist",
    "MedMNISTSource": "medmnist",
    "assign_splits": "splits",
    "check_cases": "sources",
    "download_medmnist": "medmnist_download",
    "kfold": "splits",
    "load_medmnist_npz": "medmnist",
    "open_source": "sources",
    "read_dicom_file": "dicom",
    "read_dicom_series": "dicom_series",
    "read_image": "readers",
    "read_npy": "numpy_file",
    "read_nifti": "nifti",
    "read_raster": "raster",
    "subsample_train": "splits",
}

__all__ = ["Case", "CaseSet", "Image", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'medlens.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medlens.data.{_LAZY[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)


# Segmentation data: image + mask sources, mask files, DICOM SEG.
_LAZY.update(
    {
        "SegmentationMask": "dicom_seg",
        "SegmentationSource": "segmentation",
        "as_label_map": "dicom_seg",
        "open_segmentation_source": "segmentation",
        "read_dicom_seg": "dicom_seg",
        "read_mask": "masks",
        "write_dicom_seg": "dicom_seg",
        "write_mask": "masks",
    }
)
__all__ = ["Case", "CaseSet", "Image", *sorted(_LAZY)]
