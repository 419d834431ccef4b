"""The official MedMNIST v2/v3 files: class names and MD5 per image size.

Copied from MedMNIST/MedMNIST ``medmnist/info.py`` (version 3.0.2, commit
3bb56be69bca38e5f105b21e4d6482b91354d3a4); files live in Zenodo record 10519652.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ZENODO_RECORD_URL = "https://zenodo.org/records/10519652/files"
BASE_URL_ENV = "MEDLENS_MEDMNIST_BASE_URL"

_ORGANS_2D = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
              "liver", "lung-left", "lung-right", "pancreas", "spleen")  # fmt: skip


@dataclass(frozen=True)
class MedMNISTInfo:
    """One MedMNIST dataset: its class names (label order) and the MD5 of each size's file."""

    class_names: tuple[str, ...]
    md5: dict[int, str]
    volumetric: bool = False
    task: str = "multi-class"


def _sizes(*md5s: str) -> dict[int, str]:
    return dict(zip((28, 64, 128, 224), md5s, strict=False))


MEDMNIST_CATALOG: dict[str, MedMNISTInfo] = {
    "pathmnist": MedMNISTInfo(
        (
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ),
        _sizes(
            "a8b06965200029087d5bd730944a56c1",
            "55aa9c1e0525abe5a6b9d8343a507616",
            "ac42d08fb904d92c244187169d1fd1d9",
            "2c51a510bcdc9cf8ddb2af93af1eadec",
        ),
    ),  # fmt: skip
    "chestmnist": MedMNISTInfo(
        (
            "atelectasis",
            "cardiomegaly",
            "effusion",
            "infiltration",
            "mass",
            "nodule",
            "pneumonia",
            "pneumothorax",
            "consolidation",
            "edema",
            "emphysema",
            "fibrosis",
            "pleural",
            "hernia",
        ),
        _sizes(
            "02c8a6516a18b556561a56cbdd36c4a8",
            "9de6cd0b934ebb5b7426cfba5efbae16",
            "db107e5590b27930b62dbaf558aebee3",
            "45bd33e6f06c3e8cdb481c74a89152aa",
        ),
        task="multi-label, binary-class",
    ),  # fmt: skip
    "dermamnist": MedMNISTInfo(
        (
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ),
        _sizes(
            "0744692d530f8e62ec473284d019b0c7",
            "b70a2f5635c6199aeaa28c31d7202e1f",
            "2defd784463fa5243564e855ed717de1",
            "8974907d8e169bef5f5b96bc506ae45d",
        ),
    ),  # fmt: skip
    "octmnist": MedMNISTInfo(
        ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
        _sizes(
            "c68d92d5b585d8d81f7112f81e2d0842",
            "e229e9440236b774d9f0dfef9d07bdaf",
            "0a97e76651ace45c5d943ee3f65b63ae",
            "abc493b6d529d5de7569faaef2773ba3",
        ),
    ),  # fmt: skip
    "pneumoniamnist": MedMNISTInfo(
        ("normal", "pneumonia"),
        _sizes(
            "28209eda62fecd6e6a2d98b1501bb15f",
            "8f4eceb4ccffa70c672198ea285246c6",
            "05b46931834c231683c68f40c47b2971",
            "d6a3c71de1b945ea11211b03746c1fe1",
        ),
        task="binary-class",
    ),  # fmt: skip
    "retinamnist": MedMNISTInfo(
        ("0", "1", "2", "3", "4"),
        _sizes(
            "bd4c0672f1bba3e3a89f0e4e876791e4",
            "afda852cc34dcda56f86ad2b2457dbcc",
            "e48e916a24454daf90583d4e6efb1a18",
            "eae7e3b6f3fcbda4ae613ebdcbe35348",
        ),
        task="ordinal-regression",
    ),  # fmt: skip
    "breastmnist": MedMNISTInfo(
        ("malignant", "normal, benign"),
        _sizes(
            "750601b1f35ba3300ea97c75c52ff8f6",
            "742edef2a1fd1524b2efff4bd7ba9364",
            "363e4b3f8d712e9b5de15470a2aaadf1",
            "b56378a6eefa9fed602bb16d192d4c8b",
        ),
        task="binary-class",
    ),  # fmt: skip
    "bloodmnist": MedMNISTInfo(
        (
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
        _sizes(
            "7053d0359d879ad8a5505303e11de1dc",
            "2b94928a2ae4916078ca51e05b6b800b",
            "adace1e0ed228fccda1f39692059dd4c",
            "b718ff6835fcbdb22ba9eacccd7b2601",
        ),
    ),  # fmt: skip
    "tissuemnist": MedMNISTInfo(
        (
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ),
        _sizes(
            "ebe78ee8b05294063de985d821c1c34b",
            "123ece2eba09d0aa5d698fda57103344",
            "61b955355d7425a89687b06cca3ce0c2",
            "b077128c4a949f0a4eb01517f9037b9c",
        ),
    ),  # fmt: skip
    "organamnist": MedMNISTInfo(
        _ORGANS_2D,
        _sizes(
            "68e3f8846a6bd62f0c9bf841c0d9eacc",
            "2dcccc29b88e6da5a01161ef20cda288",
            "eeae80d0a227a8d099027e1b3cfd3b60",
            "50747347e05c87dd3aaf92c49f9f3170",
        ),
    ),  # fmt: skip
    "organcmnist": MedMNISTInfo(
        _ORGANS_2D,
        _sizes(
            "b9ceb9546e10131b32923c5bbeaea2b1",
            "3ce34a8724ea6f548e6db4744d03b6a9",
            "773c1f009daa3fe5d9a2a201b2a7ed94",
            "050f5e875dc056f6768abf94ec9995d1",
        ),
    ),  # fmt: skip
    "organsmnist": MedMNISTInfo(
        _ORGANS_2D,
        _sizes(
            "9ab87b696fb54e2a387ebe992d6ed5f1",
            "53a6d115339d874c25e309a994ff46d3",
            "ded0c5fa01a95dc4978b956f613e9b8e",
            "b354719e553fbbb2513d5533f52a4cb1",
        ),
    ),  # fmt: skip
    "organmnist3d": MedMNISTInfo(
        (
            "liver",
            "kidney-right",
            "kidney-left",
            "femur-right",
            "femur-left",
            "bladder",
            "heart",
            "lung-right",
            "lung-left",
            "spleen",
            "pancreas",
        ),
        _sizes("a0c5a1ff56af4f155c46d46fbb45a2fe", "58a2205adf14a9d0a189cb06dc78bf10"),
        volumetric=True,
    ),  # fmt: skip
    "nodulemnist3d": MedMNISTInfo(
        ("benign", "malignant"),
        _sizes("8755a7e9e05a4d9ce80a24c3e7a256f3", "c47c5b7d457bf6332200d2ea6d64ecd8"),
        volumetric=True,
        task="binary-class",
    ),
    "adrenalmnist3d": MedMNISTInfo(
        ("normal", "hyperplasia"),
        _sizes("bbd3c5a5576322bc4cdfea780653b1ce", "17721accfe9fb005146a47d33bc54b2f"),
        volumetric=True,
        task="binary-class",
    ),
    "fracturemnist3d": MedMNISTInfo(
        ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
        _sizes("6aa7b0143a6b42da40027a9dda61302f", "f01d7e6316aedf4210da0da5b7437b42"),
        volumetric=True,
    ),
    "vesselmnist3d": MedMNISTInfo(
        ("vessel", "aneurysm"),
        _sizes("b41fd4f7e7e2feedddb201585ecafa1b", "6bb274a8846e1097066dcd64e2c4520f"),
        volumetric=True,
        task="binary-class",
    ),
    "synapsemnist3d": MedMNISTInfo(
        ("inhibitory synapse", "excitatory synapse"),
        _sizes("1235b78a3cd6280881dd7850a78eadb6", "43bd14ebf3af9d3dd072446fedc14d5e"),
        volumetric=True,
        task="binary-class",
    ),
}


def medmnist_filename(flag: str, size: int = 28) -> str:
    """Official file name: ``{flag}.npz`` for 28 px, ``{flag}_{size}.npz`` otherwise."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_url(flag: str, size: int = 28) -> str:
    """Download URL of one MedMNIST file: ``{base}/{file name}?download=1``.

    ``base`` is the official Zenodo record (:data:`ZENODO_RECORD_URL`) unless the environment
    variable ``MEDLENS_MEDMNIST_BASE_URL`` is set to something non-empty (a mirror, or a local
    server in tests); it is read at each call and a trailing ``/`` is dropped. The MD5 checked
    after a download is always the official one from :data:`MEDMNIST_CATALOG`, whatever the base.
    """
    base = os.environ.get(BASE_URL_ENV, "").strip().rstrip("/") or ZENODO_RECORD_URL
    return f"{base}/{medmnist_filename(flag, size)}?download=1"


def flag_from_filename(name: str) -> str | None:
    """The catalog flag of an official file name (``adrenalmnist3d_64.npz``: ``adrenalmnist3d``)."""
    stem = name.lower().removesuffix(".npz")
    for size in (64, 128, 224):
        stem = stem.removesuffix(f"_{size}")
    return stem if stem in MEDMNIST_CATALOG else None
