"""Segmentation sources: image + mask pairs from DRIVE, the Medical Segmentation Decathlon /
nnU-Net, and plain ``images/`` + ``masks/`` folders.

Every source is a ``CaseSet`` (cases with ``label=None``) and adds ``load_mask`` (the label
map on the image's grid) and ``load_roi`` (the field-of-view mask, where the layout has one).
Pairs are matched when the source is opened: an image without a mask, or a mask without an
image, is an error naming the file, never dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlens.data.case import Case
from medlens.data.image import Image
from medlens.data.masks import read_mask
from medlens.data.nifti import is_nifti_path
from medlens.data.readers import image_format, read_image
from medlens.data.validation import first_line
from medlens.errors import ConfigError, InputError

LAYOUTS = ("drive", "msd", "folder")
DRIVE_CLASSES = ["background", "vessel"]
BINARY_CLASSES = ["background", "foreground"]
SPLIT_FOLDERS = ("train", "val", "test")
_IGNORED = {"thumbs.db", "desktop.ini", "dicomdir"}
_CHANNEL_SUFFIX = re.compile(r"(.+)_(\d{4})")


@dataclass(frozen=True)
class SegmentationPair:
    """The files of one case.

    Attributes:
        images: one file (or DICOM series folder) per channel group, in channel order; more
            than one for nnU-Net v2 ``_0000``, ``_0001``, ... channel files.
        mask: the label map file.
        roi: the field-of-view mask file, or None.
    """

    images: tuple[Path, ...]
    mask: Path
    roi: Path | None = None


class SegmentationSource:
    """Image + mask cases of one dataset folder (build it with ``open_segmentation_source``).

    Attributes:
        root: the dataset folder.
        layout: ``"drive"``, ``"msd"`` or ``"folder"``.
        cases: one ``Case`` per image, ``label=None``, ``split`` from the layout when it has
            one, ``source`` the (first channel's) image file.
        class_names: class ``i`` is label value ``i`` in the masks; 0 is the background.
        pairs: ``case_id`` -> the case's files.
        unlabelled: images without masks the layout allows (Decathlon ``imagesTs`` without
            ``labelsTs``); they are not cases, since nothing can be trained or scored on them.
    """

    def __init__(
        self,
        root: Path,
        layout: str,
        class_names: list[str],
        cases: list[Case],
        pairs: dict[str, SegmentationPair],
        unlabelled: list[Path] | None = None,
    ) -> None:
        self.root = root
        self.layout = layout
        self.class_names = class_names
        self.cases = cases
        self.pairs = pairs
        self.unlabelled = list(unlabelled or [])

    def load(self, case: Case) -> Image:
        """The case's image; nnU-Net channel files are stacked as channels (each must hold one
        channel on the first file's grid)."""
        files = self._pair(case).images
        if len(files) == 1:
            return read_image(files[0])
        channels = [read_image(path) for path in files]
        first = channels[0]
        for path, channel in zip(files, channels, strict=True):
            if channel.num_channels != 1 or channel.spatial_shape != first.spatial_shape:
                raise InputError(
                    path,
                    f"channel file is {channel.array.shape} but {files[0].name} is "
                    f"{first.array.shape}; each channel file holds one channel on one grid",
                )
        meta = {**first.meta, "channel_files": [str(p) for p in files]}
        array = np.concatenate([c.array for c in channels])
        return Image(array, first.spacing, first.affine, source=str(files[0]), meta=meta)

    def load_mask(self, case: Case, image: Image | None = None) -> Image:
        """The case's label map ``(1, *spatial)`` uint8 on the image's grid (spacing, affine).

        Args:
            case: one of ``cases``.
            image: the case's image when already loaded (else it is read to check the grid).

        Raises:
            InputError: a mask whose shape differs from the image (naming both files), or
                label values outside ``0..len(class_names) - 1`` (naming them).
        """
        pair = self._pair(case)
        mask = read_mask(pair.mask, reference=image if image is not None else self.load(case))
        present = [int(v) for v in np.unique(mask.array)]
        outside = [v for v in present if v >= len(self.class_names)]
        if outside:
            raise InputError(
                pair.mask,
                f"holds label values {outside} outside the {len(self.class_names)} classes "
                f"{self.class_names} (values 0..{len(self.class_names) - 1})",
            )
        mask.meta["class_names"] = list(self.class_names)
        return mask

    def load_roi(self, case: Case, image: Image | None = None) -> Image | None:
        """The field-of-view mask ``(1, *spatial)`` bool on the image's grid, or None when
        the layout has none (only DRIVE has one).

        Raises:
            InputError: a shape that differs from the image, or more than two values.
        """
        pair = self._pair(case)
        if pair.roi is None:
            return None
        roi = read_mask(pair.roi, reference=image if image is not None else self.load(case))
        if roi.array.max(initial=0) > 1:
            raise InputError(pair.roi, "a field-of-view mask must be binary (0/1 or 0/255)")
        return roi.with_array(roi.array.astype(bool))

    def _pair(self, case: Case) -> SegmentationPair:
        try:
            return self.pairs[case.case_id]
        except KeyError:
            raise InputError(case.source or case.case_id, "is not a case of this source") from None


def open_segmentation_source(
    path: str | Path, layout: str = "auto", class_names: list[str] | None = None
) -> SegmentationSource:
    """Open a folder of image + mask pairs.

    Layouts (``"auto"`` tries them in this order):
        - ``drive``: ``training|test/images/NN_*.tif``, ``1st_manual/NN_manual1.gif`` (vessel
          masks) and ``mask/NN_*_mask.gif`` (field of view); split ``train``/``test``; case
          ids ``train/21``; classes ``background``, ``vessel``.
        - ``msd``: Medical Segmentation Decathlon and nnU-Net: ``imagesTr/`` + ``labelsTr/``
          (MSD: same file names, an image may be 4D; nnU-Net v2: ``CASE_0000.nii.gz``, ...
          for the channels of label ``CASE.nii.gz``), optional ``dataset.json`` whose
          ``labels`` give the class names (``{"0": "background"}`` or
          ``{"background": 0}``). Cases have no split, unless ``labelsTs/`` exists: then
          ``imagesTr`` is ``train`` and ``imagesTs`` is ``test``. ``imagesTs`` without labels
          is listed in ``unlabelled``. Case ids are the case names.
        - ``folder``: ``images/`` + ``masks/`` (or ``labels/``) matched by file stem (a DICOM
          series folder in ``images/`` is matched by its name, e.g. to a SEG file), or
          ``train|val|test/images`` + ``.../masks`` giving the split. Case ids are the image
          paths relative to the root.

    Args:
        path: the dataset folder.
        layout: ``"auto"``, ``"drive"``, ``"msd"`` or ``"folder"``.
        class_names: class names in label order (overrides ``dataset.json``); default as
            above, else ``["background", "foreground"]``.

    Raises:
        ConfigError: an unknown layout.
        InputError: a missing folder, an image or mask without a partner, two files with one
            stem, a file that is not an image, or a malformed ``dataset.json``.
    """
    root = Path(path)
    if layout not in ("auto", *LAYOUTS):
        raise ConfigError("layout", f"must be auto or one of {', '.join(LAYOUTS)}, not {layout!r}")
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    chosen = _detect_layout(root) if layout == "auto" else layout
    if chosen == "drive":
        return _open_drive(root, class_names)
    if chosen == "msd":
        return _open_msd(root, class_names)
    return _open_folder(root, class_names)


def _detect_layout(root: Path) -> str:
    if (root / "training" / "1st_manual").is_dir() or (root / "test" / "1st_manual").is_dir():
        return "drive"
    if (root / "imagesTr").is_dir():
        return "msd"
    if (root / "images").is_dir() or any((root / s / "images").is_dir() for s in SPLIT_FOLDERS):
        return "folder"
    raise InputError(
        root,
        "is no segmentation layout medlens knows: expected DRIVE (training/, test/ with images/, "
        "1st_manual/, mask/), Decathlon/nnU-Net (imagesTr/, labelsTr/) or images/ + masks/",
    )


def _visible(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and p.name.lower() not in _IGNORED
    )


def _stem(path: Path) -> str:
    if path.is_dir():
        return path.name
    if is_nifti_path(path) and path.name.lower().endswith(".gz"):
        return path.name[: -len(".nii.gz")]
    return path.stem


def _keyed(folder: Path, key_of: Callable[[Path], str], what: str) -> dict[str, Path]:
    """Files of ``folder`` by key; two files with one key is an error."""
    keyed: dict[str, Path] = {}
    for path in _visible(folder):
        key = key_of(path)
        if key in keyed:
            raise InputError(path, f"has the same {what} {key!r} as {keyed[key].name}; rename one")
        keyed[key] = path
    return keyed


def _require_partners(
    first: dict[str, Path], second: dict[str, Path], first_what: str, second_what: str
) -> None:
    for key, path in first.items():
        if key not in second:
            raise InputError(path, f"has no partner {second_what} (key {key!r})")
    for key, path in second.items():
        if key not in first:
            raise InputError(path, f"has no partner {first_what} (key {key!r})")


def _open_drive(root: Path, class_names: list[str] | None) -> SegmentationSource:
    cases: list[Case] = []
    pairs: dict[str, SegmentationPair] = {}
    folders = [(f, s) for f, s in (("training", "train"), ("test", "test")) if (root / f).is_dir()]
    for folder, split in folders:
        base = root / folder
        images = _keyed(base / "images", _drive_number, "image number")
        vessels = _keyed(base / "1st_manual", _drive_number, "image number")
        fov = _keyed(base / "mask", _drive_number, "image number")
        _require_partners(images, vessels, "image in images/", "vessel mask in 1st_manual/")
        _require_partners(images, fov, "image in images/", "field-of-view mask in mask/")
        for key, image in images.items():
            case_id = f"{split}/{key}"
            pairs[case_id] = SegmentationPair((image,), vessels[key], fov[key])
            cases.append(_case(case_id, split, image))
    if not cases:
        raise InputError(root, "holds no DRIVE cases (training/ or test/ with images/)")
    return SegmentationSource(root, "drive", list(class_names or DRIVE_CLASSES), cases, pairs)


def _drive_number(path: Path) -> str:
    """``21`` of ``21_training.tif``, ``21_manual1.gif`` and ``21_training_mask.gif``."""
    return path.name.split("_")[0]


def _open_msd(root: Path, class_names: list[str] | None) -> SegmentationSource:
    description = _read_dataset_json(root / "dataset.json")
    names = class_names or _class_names(description.get("labels"), root / "dataset.json")
    labelled_test = (root / "labelsTs").is_dir()
    cases: list[Case] = []
    pairs: dict[str, SegmentationPair] = {}
    groups = [("imagesTr", "labelsTr", "train" if labelled_test else None)]
    if labelled_test:
        groups.append(("imagesTs", "labelsTs", "test"))
    for images_dir, labels_dir, split in groups:
        for case_id, pair in _msd_pairs(root / images_dir, root / labels_dir, description):
            if case_id in pairs:
                raise InputError(pair.mask, f"case {case_id!r} appears in two folders")
            pairs[case_id] = pair
            cases.append(_case(case_id, split, pair.images[0]))
    if not cases:
        raise InputError(root / "imagesTr", "holds no images")
    unlabelled = (
        [] if labelled_test or not (root / "imagesTs").is_dir() else _visible(root / "imagesTs")
    )
    return SegmentationSource(root, "msd", list(names or BINARY_CLASSES), cases, pairs, unlabelled)


def _msd_pairs(
    images_dir: Path, labels_dir: Path, description: dict
) -> list[tuple[str, SegmentationPair]]:
    labels = _keyed(labels_dir, _stem, "case name")
    channels: dict[str, dict[int, Path]] = {}
    for image in _visible(images_dir):
        stem = _stem(image)
        suffixed = _CHANNEL_SUFFIX.fullmatch(stem)
        if stem in labels:
            case, channel = stem, 0
        elif suffixed and suffixed.group(1) in labels:
            case, channel = suffixed.group(1), int(suffixed.group(2))
        else:
            raise InputError(
                image,
                f"has no partner label in {labels_dir.name}/ (expected {stem} or, for a "
                "channel file CASE_0000, CASE)",
            )
        if channel in channels.setdefault(case, {}):
            raise InputError(image, f"is a second channel {channel} of case {case!r}")
        channels[case][channel] = image
    for case, label in labels.items():
        if case not in channels:
            raise InputError(label, f"has no partner image in {images_dir.name}/")
    expected = len(description.get("channel_names") or description.get("modality") or {}) or None
    result = []
    for case in sorted(channels):
        found = sorted(channels[case])
        if found != list(range(len(found))) or (expected and len(found) not in (1, expected)):
            raise InputError(
                channels[case][found[0]],
                f"case {case!r} has channels {found}; expected 0..{(expected or len(found)) - 1} "
                "without gaps (CASE_0000, CASE_0001, ...)",
            )
        files = tuple(channels[case][c] for c in found)
        result.append((case, SegmentationPair(files, labels[case])))
    return result


def _read_dataset_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"is not readable JSON ({first_line(exc)})") from None
    if not isinstance(description, dict):
        raise InputError(path, "must hold a JSON object")
    return description


def _class_names(labels: object, path: Path) -> list[str] | None:
    """Class names in label order from ``dataset.json`` ``labels`` in the MSD form
    (``{"0": "background"}``) or the nnU-Net v2 form (``{"background": 0}``)."""
    if labels is None:
        return None
    if not isinstance(labels, dict) or not labels:
        raise InputError(path, "'labels' must map label values to class names")
    numbered: list[tuple[int, str]] = []
    for key, value in labels.items():
        if isinstance(value, str) and re.fullmatch(r"\d+", str(key).strip()):
            numbered.append((int(key), value))
        elif isinstance(value, int) and not isinstance(value, bool):
            numbered.append((value, str(key)))
        else:
            raise InputError(
                path,
                f"label {key!r}: {value!r} is neither the MSD form ('1': 'name') nor the nnU-Net "
                "form ('name': 1); region labels (lists) are not supported",
            )
    numbered.sort()
    values = [v for v, _ in numbered]
    if values != list(range(len(values))):
        raise InputError(path, f"label values {values} must run 0..{len(values) - 1} without gaps")
    return [name for _, name in numbered]


def _open_folder(root: Path, class_names: list[str] | None) -> SegmentationSource:
    if (root / "images").is_dir():
        groups: list[tuple[str | None, Path]] = [(None, root)]
    else:
        groups = [(s, root / s) for s in SPLIT_FOLDERS if (root / s / "images").is_dir()]
    cases: list[Case] = []
    pairs: dict[str, SegmentationPair] = {}
    for split, base in groups:
        masks_dir = next((base / n for n in ("masks", "labels") if (base / n).is_dir()), None)
        if masks_dir is None:
            raise InputError(base, "has images/ but no masks/ or labels/ folder")
        images = _keyed(base / "images", _stem, "file stem")
        masks = _keyed(masks_dir, _stem, "file stem")
        _require_partners(images, masks, "image in images/", f"mask in {masks_dir.name}/")
        for stem, image in images.items():
            _require_readable(image, "images/")
            _require_readable(masks[stem], f"{masks_dir.name}/", file_only=True)
            case_id = image.relative_to(root).as_posix()
            pairs[case_id] = SegmentationPair((image,), masks[stem])
            cases.append(_case(case_id, split, image))
    if not cases:
        raise InputError(root, "holds no image + mask pairs in images/ and masks/")
    return SegmentationSource(root, "folder", list(class_names or BINARY_CLASSES), cases, pairs)


def _require_readable(path: Path, folder: str, file_only: bool = False) -> None:
    if file_only and path.is_dir():
        raise InputError(path, f"is a folder; a mask in {folder} is one file")
    if image_format(path) is None:
        raise InputError(path, f"is not an image medlens reads; move it out of {folder}")


def _case(case_id: str, split: str | None, image: Path) -> Case:
    return Case(case_id=case_id, label=None, split=split, patient_id=case_id, source=str(image))
