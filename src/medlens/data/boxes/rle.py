"""COCO run-length encoding of binary masks, and polygons rasterised to masks.

A COCO RLE is ``{"size": [height, width], "counts": ...}``: the lengths of alternating runs
of 0 and 1, starting with 0, over the mask read column by column (Fortran order). ``counts``
is a list of integers (uncompressed) or a string (compressed: pycocotools' variable-length
code of each count's difference to the count two places before). Both are read; the
compressed string is written, so files interchange with pycocotools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlens.errors import InputError


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """The uncompressed RLE counts of a 2D boolean mask (column by column, zeros first)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    return ([0] + counts) if flat[0] else counts


def counts_to_mask(counts: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The ``(height, width)`` boolean mask of uncompressed RLE ``counts``.

    Raises:
        ValueError: the counts do not add up to ``height * width``, or one is negative.
    """
    height, width = int(size[0]), int(size[1])
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any() or int(runs.sum()) != height * width:
        raise ValueError(f"RLE counts add up to {int(runs.sum())}, not {height} x {width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((height, width), order="F")


def encode_counts(counts: Sequence[int]) -> str:
    """pycocotools' compressed string of uncompressed ``counts`` (``rleToString``)."""
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def decode_counts(text: str) -> list[int]:
    """Uncompressed counts of pycocotools' compressed string (``rleFrString``).

    Raises:
        ValueError: a character outside the code's alphabet.
    """
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ValueError("the RLE string ends inside a count")
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[p]!r} is not part of a COCO RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A 2D boolean mask as a compressed COCO RLE ``{"size": [h, w], "counts": str}``."""
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": encode_counts(mask_to_counts(mask))}


def decode_rle(rle: Any, where: str) -> np.ndarray:
    """The boolean mask of a COCO RLE (``counts`` a list or a compressed string).

    Raises:
        InputError: naming ``where`` (``file#annotation id 3``) when the RLE is malformed.
    """
    try:
        size = rle["size"]
        counts = rle["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        runs = decode_counts(counts) if isinstance(counts, str) else list(counts)
        return counts_to_mask(runs, size)
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(where, f"malformed RLE segmentation ({exc})") from None


def polygons_to_mask(polygons: Sequence[Sequence[float]], size: Sequence[int]) -> np.ndarray:
    """The union of COCO polygons (``[x0, y0, x1, y1, ...]`` in pixel-edge coordinates) as a
    ``(height, width)`` boolean mask of the pixels whose centres lie inside.

    pycocotools rasterises polygons with its own sub-pixel rule, so a boundary pixel may
    differ; masks given as RLE are exact.
    """
    from skimage.draw import polygon

    height, width = int(size[0]), int(size[1])
    mask = np.zeros((height, width), dtype=bool)
    for poly in polygons:
        xy = np.asarray(poly, dtype=float).reshape(-1, 2)
        rows, cols = polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=(height, width))
        mask[rows, cols] = True
    return mask


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The tight box ``(x1, y1, x2, y2)`` (pixel edges) of a boolean mask; None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
