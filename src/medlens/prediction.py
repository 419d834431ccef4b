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


def _expand(inputs: list[Path]) -> Iterator[Path]:
    for path in inputs:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in IMAGE_SUFFIXES and not child.name.startswith("."):
                    yield child
        else:
            yield path


def iter_input_cases(inputs: list[Path]) -> Iterator[tuple[str, str, Callable[[], Image]]]:
    """``(case_id, file, load)`` for every image the inputs hold; an ``.npz`` yields each image.

    Loading is deferred to ``load()`` so one bad file can be recorded and skipped.
    """
    from medlens.data.medmnist import load_medmnist_npz
    from medlens.data.readers import read_image

    for path in _expand(inputs):
        if path.suffix.lower() == ".npz" and path.is_file():
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
    for case_id, file, load in iter_input_cases(list(inputs)):
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
