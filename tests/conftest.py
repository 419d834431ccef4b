"""Shared fixtures: the real data in ../shared/data (never copied into the repo)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real datasets. Missing data is a failure, not a skip: CI has it."""
    assert SHARED_DATA.is_dir(), f"real test data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def pneumonia_npz(shared_data: Path) -> Path:
    return shared_data / "pneumoniamnist_subset" / "pneumoniamnist.npz"


@pytest.fixture(scope="session")
def adrenal_npz(shared_data: Path) -> Path:
    return shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"


@pytest.fixture(scope="session")
def ct_dir(shared_data: Path) -> Path:
    return shared_data / "dicom_ct_liver_seg" / "ct"


@pytest.fixture(scope="session")
def drive_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """``drive_subset(train_ids, test_ids)``: the DRIVE layout holding only those images
    (symbolic links to the real files), for segmentation runs small enough for a test."""

    def make(train_ids: tuple[str, ...], test_ids: tuple[str, ...]) -> Path:
        source = shared_data / "drive_retina_vessels"
        root = tmp_path_factory.mktemp("drive")
        for split, ids, tag in (("training", train_ids, "training"), ("test", test_ids, "test")):
            for sub in ("images", "1st_manual", "mask"):
                (root / split / sub).mkdir(parents=True)
            for number in ids:
                for sub, name in (
                    ("images", f"{number}_{tag}.tif"),
                    ("1st_manual", f"{number}_manual1.gif"),
                    ("mask", f"{number}_{tag}_mask.gif"),
                ):
                    (root / split / sub / name).symlink_to(source / split / sub / name)
        return root

    return make


@pytest.fixture(scope="session")
def pneumonia_run(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classification run named ``pneumonia``: small_cnn, 1 epoch on 5% of PneumoniaMNIST's
    training split (28 x 28 grey inputs), for plumbing tests (explain, stream, serve, export),
    not accuracy."""
    import torch

    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(1)
    config = {
        "name": "pneumonia",
        "seed": 3,
        "output_dir": str(tmp_path_factory.mktemp("runs")),
        "data": {"format": "medmnist", "path": str(pneumonia_npz), "train_fraction_used": 0.05},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 20},
    }
    return train_from_config(parse_config(config), progress=False)


@pytest.fixture
def nan_run(pneumonia_run: Path, tmp_path: Path) -> Path:
    """A copy of ``pneumonia_run`` (without its ONNX file) whose last layer's bias is NaN, so
    that every output of its network is NaN."""
    import shutil

    import torch

    run = Path(shutil.copytree(pneumonia_run, tmp_path / "nan_run" / pneumonia_run.name))
    (run / "model.onnx").unlink(missing_ok=True)
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    last_bias = [key for key in state["model"] if key.endswith("bias")][-1]
    state["model"][last_bias] = torch.full_like(state["model"][last_bias], float("nan"))
    torch.save(state, run / "model.pt")
    return run


@pytest.fixture(scope="session")
def trust_runs(pneumonia_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of ``pneumonia_run`` whose decision rule refers every case: ``uncertain`` (a
    refer band over all of [0, 1]) and ``out_of_distribution`` (an out-of-distribution
    threshold below every score), to follow a referral into every output."""
    import json
    import shutil

    root = tmp_path_factory.mktemp("trust_runs")
    runs = {}
    for reason in ("uncertain", "out_of_distribution"):
        run = shutil.copytree(pneumonia_run, root / reason / "pneumonia")
        if reason == "uncertain":
            labels = json.loads((run / "labels.json").read_text())
            labels["refer"] = {"rule": "coverage", "low": 0.0, "high": 2.0, "targets": {}}
            (run / "labels.json").write_text(json.dumps(labels))
        else:
            with np.load(run / "ood.npz") as arrays:
                changed = {key: arrays[key] for key in arrays.files}
            changed["threshold"] = np.asarray(-1.0)
            np.savez(run / "ood.npz", **changed)
        runs[reason] = run
    return runs


def _train_segmentation(config: dict) -> Path:
    import torch

    from medlens.commands.train import train_and_report
    from medlens.config import parse_config

    torch.set_num_threads(1)
    return train_and_report(parse_config(config), progress=False)


@pytest.fixture(scope="session")
def drive_run(drive_subset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D U-Net run named ``vessels``: 1 epoch on 3 DRIVE training images (green channel,
    resized to 96 px), for plumbing tests (predict, serve, export), not accuracy."""
    return _train_segmentation(
        {
            "name": "vessels",
            "task": "segmentation",
            "seed": 0,
            "output_dir": str(tmp_path_factory.mktemp("runs")),
            "data": {
                "format": "segmentation",
                "layout": "drive",
                "path": str(drive_subset(("21", "22", "23"), ("01",))),
                "val_fraction": 0.34,
            },
            "preprocess": [
                {"name": "select_channels", "channels": [1]},
                {"name": "fixed_scale", "divisor": 255},
                {"name": "resize", "size": [96, 96]},
            ],
            "model": {"name": "unet"},
            "segmentation": {"patch_size": [64, 64], "patches_per_image": 4, "save_masks": "none"},
            "train": {"epochs": 1, "batch_size": 4, "warmup_epochs": 0},
            "evaluate": {"n_bootstrap": 0},
        }
    )


@pytest.fixture(scope="session")
def ct_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3D FCN run named ``liver``: 1 epoch on the real 3-slice CT and its liver DICOM SEG
    (the same case in every split), for plumbing tests (DICOM SEG out, PACS), not accuracy."""
    root = tmp_path_factory.mktemp("ct_seg")
    ct = shared_data / "dicom_ct_liver_seg"
    for split in ("train", "val", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        (root / split / "images" / "ct").symlink_to(ct / "ct")
        (root / split / "masks" / "ct.dcm").symlink_to(ct / "seg" / "liver.dcm")
    return _train_segmentation(
        {
            "name": "liver",
            "task": "segmentation",
            "output_dir": str(tmp_path_factory.mktemp("runs")),
            "data": {
                "format": "segmentation",
                "layout": "folder",
                "path": str(root),
                "class_names": ["background", "liver"],
            },
            "preprocess": [{"name": "ct_window", "preset": "abdomen"}],
            "model": {"name": "fcn"},
            "segmentation": {
                "patch_size": [3, 128, 128],
                "patches_per_image": 4,
                "save_masks": "none",
            },
            "train": {"epochs": 1, "batch_size": 4, "warmup_epochs": 0},
            "evaluate": {"n_bootstrap": 0},
        }
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded_single_thread() -> None:
    """Every test starts from torch seed 0 on one thread (two test processes share 2 cores)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def drive_dir(shared_data: Path) -> Path:
    return shared_data / "drive_retina_vessels"


@pytest.fixture(scope="session")
def pneumonia_test_images(pneumonia_npz: Path) -> np.ndarray:
    """The first 8 PneumoniaMNIST test images, uint8 (8, 28, 28)."""
    with np.load(pneumonia_npz) as data:
        return np.array(data["test_images"][:8])


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def png_bytes() -> Callable[[np.ndarray], bytes]:
    """uint8 (H, W) or (H, W, 3) -> PNG file bytes."""
    return _png_bytes


@pytest.fixture(scope="session")
def small_npz(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MedMNIST file of real images, 40 train / 20 val / 20 test (half of each class)."""
    rng = np.random.default_rng(1)
    out = {}
    with np.load(pneumonia_npz) as archive:
        for split, n in (("train", 20), ("val", 10), ("test", 10)):
            labels = archive[f"{split}_labels"].ravel()
            rows = np.concatenate(
                [rng.choice(np.flatnonzero(labels == c), n, replace=False) for c in (0, 1)]
            )
            out[f"{split}_images"] = archive[f"{split}_images"][rows]
            out[f"{split}_labels"] = archive[f"{split}_labels"][rows]
    path = tmp_path_factory.mktemp("small") / "pneumoniamnist.npz"
    np.savez(path, **out)
    return path


@pytest.fixture(scope="session")
def tiny_detector() -> dict:
    """``detection`` settings of a detector small enough to train a step in seconds on the
    CPU (one dict for the session: extend it as ``{**tiny_detector, ...}``, never in place)."""
    return {
        "fpn_channels": 32,
        "box_head_size": 32,
        "proposals_train": 60,
        "proposals_test": 30,
        "roi_batch_size": 32,
        "anchor_sizes": [8, 16, 32, 64, 128],
    }


@pytest.fixture(scope="session")
def bccd_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """``bccd_subset({"train": n, "val": n, "test": n})``: a Pascal VOC folder holding the
    first images of each official BCCD split (symbolic links to the real files)."""

    def make(per_split: dict[str, int]) -> Path:
        source = shared_data / "bccd_blood_cells" / "BCCD"
        root = tmp_path_factory.mktemp("bccd")
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (root / sub).mkdir(parents=True)
        for split, n in per_split.items():
            ids = (source / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[:n]
            (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
            for image_id in ids:
                for sub, name in (
                    ("Annotations", f"{image_id}.xml"),
                    ("JPEGImages", f"{image_id}.jpg"),
                ):
                    (root / sub / name).symlink_to(source / sub / name)
        return root

    return make


@pytest.fixture(scope="session")
def cells_run(bccd_subset, tmp_path_factory: pytest.TempPathFactory, tiny_detector: dict) -> Path:
    """A Faster R-CNN run named ``cells``: 1 epoch on 2 real BCCD blood smears (640 x 480
    JPEGs, worked on at 80 x 60), for plumbing tests of ``/v1/detect``, the web page and the
    detection SR, not accuracy."""
    import torch

    from medlens.commands.train import train_and_report
    from medlens.config import parse_config
    from medlens.tasks import check_config

    torch.set_num_threads(1)
    config = {
        "name": "cells",
        "task": "detection",
        "seed": 0,
        "output_dir": str(tmp_path_factory.mktemp("runs")),
        "data": {"format": "boxes", "path": str(bccd_subset({"train": 2, "val": 1, "test": 1}))},
        "preprocess": [
            {"name": "fixed_scale", "divisor": 255},
            {"name": "fit_size", "min_size": 60, "max_size": 80},
        ],
        "model": {"name": "faster_rcnn", "backbone": "resnet18"},
        "detection": tiny_detector,
        "train": {"epochs": 1, "batch_size": 2, "lr": 0.001, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 0},
    }
    return train_and_report(check_config(parse_config(config)), progress=False)


WBC_TRAIN = tuple(f"{n:03d}" for n in range(1, 9))
WBC_TEST = "020"  # not among the training images


@pytest.fixture(scope="session")
def wbc_cells(shared_data: Path) -> Path:
    """The real white blood cell images (``NNN.bmp``, RGB) and their expert masks
    (``NNN.png``: 0 background, 128 cytoplasm, 255 nucleus), one cell per image."""
    return shared_data / "wbc_cells" / "Dataset 1"


@pytest.fixture(scope="session")
def wbc_test_image(wbc_cells: Path) -> np.ndarray:
    """A real white blood cell image the mask run did not train on: uint8 ``(H, W, 3)``."""
    return np.asarray(PIL.Image.open(wbc_cells / f"{WBC_TEST}.bmp").convert("RGB"))


@pytest.fixture(scope="session")
def wbc_labels(shared_data: Path) -> dict[int, str]:
    """The real WBC cell types by image number: ``{1: "2", ...}`` (``"1"``-``"5"``:
    neutrophil, lymphocyte, monocyte, eosinophil, basophil)."""
    import csv

    table = shared_data / "wbc_cells" / "Class Labels of Dataset 1.csv"
    with open(table, newline="", encoding="utf-8-sig") as f:
        return {int(r["image ID"]): r["class label"] for r in csv.DictReader(f)}


WBC_TYPE_LABELS = {"1": "neutrophil", "2": "lymphocyte", "3": "monocyte"}


@pytest.fixture(scope="session")
def wbc_types_images(
    wbc_cells: Path, wbc_labels: dict[int, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A class-folder layout (``<type>/NNN.bmp``, links to the real files) of the first 16
    white blood cell images of each of neutrophil, lymphocyte and monocyte."""
    root = tmp_path_factory.mktemp("wbc_types_images")
    for label, name in WBC_TYPE_LABELS.items():
        (root / name).mkdir()
        for i in [i for i in sorted(wbc_labels) if wbc_labels[i] == label][:16]:
            (root / name / f"{i:03d}.bmp").symlink_to(wbc_cells / f"{i:03d}.bmp")
    return root


@pytest.fixture(scope="session")
def wbc_types_run(wbc_types_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-class classification run named ``wbc_types``: small_cnn, 15 epochs on
    ``wbc_types_images`` (RGB, resized to 32 px), split at random, with a refer band at 50%
    coverage: trained enough to decide more than one class, so that the cuts per class
    differ, for the plumbing of the per-class band (predict, service, web page), not
    accuracy."""
    import torch

    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(1)
    config = {
        "name": "wbc_types",
        "seed": 5,
        "output_dir": str(tmp_path_factory.mktemp("wbc_types_runs")),
        "data": {
            "format": "folder",
            "path": str(wbc_types_images),
            "split": "random",
            "val_fraction": 0.25,
            "test_fraction": 0.25,
        },
        "preprocess": [{"name": "resize", "size": 32}, {"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 15, "batch_size": 8, "lr": 3e-3, "warmup_epochs": 0},
        "refer": {"rule": "coverage", "coverage": 0.5},
        "evaluate": {"n_bootstrap": 20},
    }
    return train_from_config(parse_config(config), progress=False)


@pytest.fixture(scope="session")
def wbc_mask_run(
    wbc_cells: Path, tmp_path_factory: pytest.TempPathFactory, tiny_detector: dict
) -> Path:
    """A Mask R-CNN run named ``wbc``: 1 epoch on 8 real white blood cell images (about
    120 x 120 px), each cell (cytoplasm and nucleus) one instance, for plumbing tests of masks
    in ``/v1/detect``, the web page and the detection SR, not accuracy. Its findings are
    every detection scoring 0.05 or more (``threshold: fixed``, at most 3 per image), so the
    barely trained run has some to list."""
    import json

    import torch

    from medlens.commands.train import train_and_report
    from medlens.config import parse_config
    from medlens.data.boxes.rle import encode_mask, mask_box
    from medlens.tasks import check_config

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wbc")
    (root / "images").mkdir()
    document: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "WBC"}]}
    for k, name in enumerate(WBC_TRAIN, start=1):
        PIL.Image.open(wbc_cells / f"{name}.bmp").convert("RGB").save(
            root / "images" / f"{name}.png"
        )
        cell = np.asarray(PIL.Image.open(wbc_cells / f"{name}.png")) > 0
        x1, y1, x2, y2 = mask_box(cell) or (0.0, 0.0, 0.0, 0.0)
        height, width = cell.shape
        document["images"].append(
            {"id": k, "file_name": f"{name}.png", "height": height, "width": width}
        )
        document["annotations"].append(
            {
                "id": k,
                "image_id": k,
                "category_id": 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "segmentation": encode_mask(cell),
            }
        )
    (root / "annotations.json").write_text(json.dumps(document))
    config = {
        "name": "wbc",
        "task": "detection",
        "seed": 0,
        "output_dir": str(root / "runs"),
        "data": {
            "format": "boxes",
            "path": str(root / "annotations.json"),
            "folds": 4,
            "fold": 1,
            "val_fraction": 0.2,
        },
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "mask_rcnn", "backbone": "resnet18"},
        "detection": {
            **tiny_detector,
            "max_detections": 3,
            "threshold": "fixed",
            "fixed_threshold": 0.05,
        },
        "train": {"epochs": 1, "batch_size": 2, "lr": 0.001, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 0},
    }
    return train_and_report(check_config(parse_config(config)), progress=False)
