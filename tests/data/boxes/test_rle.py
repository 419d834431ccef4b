"""COCO RLE: medlens' encoder and decoder agree with pycocotools both ways."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.boxes.rle import decode_counts, decode_rle, encode_mask, mask_box, mask_to_counts
from medlens.errors import InputError


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [rng.random((13, 17)) < p for p in (0.05, 0.5, 0.95)]
    out += [np.zeros((5, 4), bool), np.ones((5, 4), bool)]
    big = np.zeros((200, 300), bool)
    big[20:180, 40:260] = True  # long runs: multi-character counts
    return [*out, big]


@pytest.mark.parametrize("k", range(6))
def test_equal_to_pycocotools(k: int) -> None:
    mask_util = pytest.importorskip("pycocotools.mask")
    mask = _masks()[k]
    theirs = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert encode_mask(mask)["counts"] == theirs["counts"].decode("ascii")
    np.testing.assert_array_equal(decode_rle(theirs, "x"), mask)
    assert decode_counts(theirs["counts"].decode("ascii")) == mask_to_counts(mask)


def test_boxes_and_bad_rle() -> None:
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:7] = True
    assert mask_box(mask) == (3.0, 2.0, 7.0, 4.0)
    assert mask_box(np.zeros((3, 3), bool)) is None
    with pytest.raises(InputError, match="malformed RLE"):
        decode_rle({"size": [2, 2], "counts": [1, 1]}, "file#annotation id 1")
