"""Which test images the detection report draws."""

from __future__ import annotations

import pandas as pd

from medlens.report.detection.overlays import pick_images


def test_best_median_and_worst_without_repeats() -> None:
    images = pd.DataFrame(
        {
            "split": ["test"] * 6 + ["val"],
            "image_id": ["a", "b", "c", "d", "e", "empty", "v"],
            "n_reference": [3, 3, 3, 3, 3, 0, 3],
            "fp": [0, 0, 1, 2, 3, 0, 0],
            "f1": [1.0, 0.9, 0.5, 0.4, 0.1, None, 1.0],
        }
    )
    picks = pick_images(images, per_group=2)
    assert picks["best"] == ["a", "b"]
    assert picks["worst"] == ["e", "d"]
    assert picks["median"] == ["c"]  # "b" and "c" are the middle; "b" is already shown
