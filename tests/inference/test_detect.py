"""Detections found on the preprocessed grid come back on the image's own pixels: boxes
through every recorded step, instance masks pixel by pixel."""

from __future__ import annotations

import numpy as np
import torch

from medlens.data.image import Image
from medlens.inference.detect import detect_inputs, detection_rows, network_input
from medlens.preprocess import build_pipeline


class _FixedDetector(torch.nn.Module):
    """Reports one box (and a mask filling it) on whatever grid it is given."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            mask = torch.zeros(1, 1, *image.shape[1:])
            mask[..., 10:20, 20:40] = 1.0
            out.append(
                {
                    "boxes": torch.tensor([[20.0, 10.0, 40.0, 20.0]]),
                    "scores": torch.tensor([0.7]),
                    "labels": torch.tensor([2]),
                    "masks": mask,
                }
            )
        return out


def test_boxes_and_masks_come_back_to_the_original_image() -> None:
    image = Image(np.zeros((3, 60, 80), np.float32), (1.0, 1.0), source="x.png")
    pipeline = build_pipeline(
        [
            {"name": "fit_size", "min_size": 30, "max_size": 40},
            {"name": "pad_to_multiple", "multiple": 32},
        ]
    )
    item = network_input(image, pipeline, "x")
    assert item.image.spatial_shape == (32, 64) and item.size == (60, 80)  # 30 x 40 padded
    (found,) = detect_inputs(_FixedDetector(), [item], torch.device("cpu"))
    # the network's box (20, 10, 40, 20) sits in a 30 x 40 image padded by (1, 12): it maps
    # to ((20 - 12) * 2, (10 - 1) * 2, (40 - 12) * 2, (20 - 1) * 2) on the 60 x 80 image
    np.testing.assert_allclose(found.boxes[0], [16, 18, 56, 38])
    assert found.labels.tolist() == [1] and found.scores.tolist() == [0.699999988079071]
    rows, cols = np.flatnonzero(found.masks[0].any(1)), np.flatnonzero(found.masks[0].any(0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (18, 38, 16, 56)
    row = detection_rows(found, ["a", "b"], [0.5, 0.8])[0]
    assert row["class"] == "b" and row["finding"] is False
