"""The images of a ``task: registration`` run (``data.format: pairs``): a folder of images
on one grid, with an optional label map for each (propagated and scored by Dice).

Layouts: ``images/`` + ``labels/`` sub-folders with matching file names, or the images
directly in the folder (no labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medlens.data.image import Image
from medlens.data.readers import IMAGE_SUFFIXES, read_image
from medlens.errors import InputError


@dataclass
class PairImage:
    """One image of the collection and its label map (None when it has none)."""

    case_id: str
    image: Image
    labels: Image | None


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return (
        path.is_file()
        and not name.startswith(".")
        and (name.endswith(".nii.gz") or path.suffix.lower() in IMAGE_SUFFIXES)
    )


def _case_id(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def read_pair_images(folder: str | Path) -> list[PairImage]:
    """Every image of ``folder`` (sorted by name) with its label map.

    Raises:
        InputError: a missing folder, fewer than two images, images on different grids, or
            a label map whose grid differs from its image's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "data folder not found")
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    label_dir = folder / "labels" if (folder / "labels").is_dir() else None
    paths = sorted(p for p in image_dir.iterdir() if _is_image(p))
    if len(paths) < 2:
        raise InputError(image_dir, f"registration needs at least 2 images, found {len(paths)}")
    out: list[PairImage] = []
    for path in paths:
        image = read_image(path)
        labels = None
        if label_dir is not None and (label_dir / path.name).is_file():
            labels = read_image(label_dir / path.name)
            if labels.spatial_shape != image.spatial_shape:
                raise InputError(
                    labels.source, f"labels are not on the grid of {path} ({image.spatial_shape})"
                )
        if out and image.spatial_shape != out[0].image.spatial_shape:
            raise InputError(
                path,
                f"shape {image.spatial_shape} differs from {out[0].image.source} "
                f"({out[0].image.spatial_shape}); a learned run needs images on one grid",
            )
        out.append(PairImage(_case_id(path), image, labels))
    return out
