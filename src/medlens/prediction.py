"""``medlens predict``: a run's model applied to files (DICOM, NIfTI, PNG/JPEG/TIFF, .npz)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.io_utils import write_atomic

IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".dcm",
    ".nii",
    ".gz",
    ".npy",
    ".npz",
    "",
}


def _is_series_folder(path: Path) -> bool:
    """A folder whose files are DICOM slices of one volume (no sub-folders)."""
    files = [p for p in path.iterdir() if not p.name.startswith(".")]
    return bool(files) and all(p.is_file() and p.suffix.lower() in (".dcm", "") for p in files)


def _expand(inputs: list[Path], volumes: bool) -> Iterator[Path]:
    """Files to predict; with ``volumes`` a folder of DICOM slices is one input (a series)."""
    for path in inputs:
        if path.is_dir() and not (volumes and _is_series_folder(path)):
            children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            for child in children:
                if child.is_dir() or child.suffix.lower() in IMAGE_SUFFIXES:
                    yield from _expand([child], volumes)
        else:
            yield path


def iter_input_cases(
    inputs: list[Path], volumes: bool = False
) -> Iterator[tuple[str, str, Callable[[], Image]]]:
    """``(case_id, file, load)`` for every image the inputs hold; an ``.npz`` yields each image.

    With ``volumes`` (a 3D model) a folder of DICOM slices is read as one series. Loading is
    deferred to ``load()`` so one bad file can be recorded and skipped.
    """
    from medlens.data.dicom_series import read_dicom_series
    from medlens.data.medmnist import load_medmnist_npz
    from medlens.data.readers import read_image

    for path in _expand(inputs, volumes):
        if path.is_dir():
            yield str(path), str(path), partial(read_dicom_series, path)
        elif path.suffix.lower() == ".npz" and path.is_file():
            source = load_medmnist_npz(path).as_source()
            for case in source.cases:
                yield f"{path.name}#{case.case_id}", str(path), partial(source.load, case)
        else:
            yield str(path), str(path), partial(read_image, path)


def predict_files(
    run_dir: Path, inputs: list[Path], out: Path, skip_bad: bool = False, batch_size: int = 64
) -> tuple[int, int]:
    """Write ``out`` (CSV): one row per image with probabilities, the decision and any error.

    Returns:
        (number of predictions, number of skipped files).

    Raises:
        InputError: on the first unreadable file unless ``skip_bad``.
    """
    from medlens.train.inference import load_run, predict_arrays, prepare_input

    run = load_run(run_dir)
    ids: list[str] = []
    files: list[str] = []
    arrays: list[np.ndarray] = []
    errors: list[dict[str, object]] = []
    volumes = run.input_shape is not None and len(run.input_shape) == 4
    for case_id, file, load in iter_input_cases(list(inputs), volumes=volumes):
        try:
            arrays.append(prepare_input(run, load()))
        except InputError as exc:
            if not skip_bad:
                raise
            errors.append({"case_id": case_id, "file": file, "error": exc.reason})
            continue
        ids.append(case_id)
        files.append(file)
    probs = predict_arrays(run, arrays, batch_size=batch_size)
    rows: list[dict[str, object]] = []
    for k, case_id in enumerate(ids):
        row: dict[str, object] = {"case_id": case_id, "file": files[k]}
        for c, name in enumerate(run.class_names):
            row[f"prob_{name}"] = float(probs[k, c])
        pred = (
            int(probs[k, 1] >= run.threshold)
            if len(run.class_names) == 2
            else int(np.argmax(probs[k]))
        )
        row["pred"] = pred
        row["pred_label"] = run.class_names[pred]
        row["error"] = ""
        rows.append(row)
    rows.extend(errors)
    frame = pd.DataFrame(rows)
    write_atomic(out, frame.to_csv(index=False))
    return len(ids), len(errors)
