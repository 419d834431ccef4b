"""Exact distance from each voxel of one surface to the nearest voxel of another, in mm.

Each surface is a flattened boolean array, both of one shape, with a zero margin at least as
wide as the search neighbourhood, so a voxel offset is one fixed step of the flat index. Three
stages, each exact, each for the voxels the previous one left:

1. **Shells.** Every source voxel probes the target at the offsets of a neighbourhood, shell
   by shell in order of increasing length (offsets of equal length form a shell). The first
   shell that lands on the target gives the exact distance, because every shorter offset was
   probed. Useful segmentations resolve almost every voxel within a few voxels, so the work
   grows with the surface, not the volume, and no distance transform is computed.
2. **Windows.** A few voxels farther than the shells (a stray island, a missed lobe) search a
   cube around themselves, doubled until the nearest target voxel in it lies closer than the
   cube's inner radius, beyond which every voxel is farther.
3. **KD-tree.** Whatever is left is answered by a KD-tree of the target voxel centres in mm,
   as MONAI answers every voxel.

Stages 1 and 2 stop when they stop paying: stage 1 when its last shell resolved fewer voxels
per probe than the tree would cost per voxel, and both once the work spent exceeds what the
KD-tree would cost (a ski-rental rule), so masks far apart cost at most about twice the tree
alone. The costs below are in units of one probe of one voxel (about 1 ns on a 2020s CPU).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

#: Offsets in the neighbourhood of stage 1, by number of dimensions (a radius of about 10
#: voxels when the spacing is isotropic).
SEARCH_OFFSETS = {2: 320, 3: 4200}
#: Offsets always probed (a radius of about 3 voxels): most surface voxels resolve here.
FREE_OFFSETS = {2: 29, 3: 123}
#: A KD-tree query of a far voxel; one voxel added to the tree; the fixed cost of probing one
#: offset, and of one window (Python and NumPy call overhead).
QUERY_COST, BUILD_COST, OFFSET_COST, WINDOW_COST = 1500, 60, 3000, 20000


@lru_cache(maxsize=32)
def search_offsets(spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The voxel offsets of stage 1, sorted by length in mm.

    Returns:
        ``(offsets (M, ndim) int, lengths (M,) mm)``: about ``SEARCH_OFFSETS[ndim]`` offsets,
        and every offset no longer than the longest of them.
    """
    sp = np.asarray(spacing, dtype=float)
    count = SEARCH_OFFSETS[sp.size]
    # About `count` offsets fit in an ellipsoid of this radius; the box enumerated holds every
    # offset no longer than `limit` mm, whatever its direction, so none is missed.
    unit_ball = np.pi if sp.size == 2 else 4.0 / 3.0 * np.pi
    expected = float((count * np.prod(sp) / unit_ball) ** (1.0 / sp.size))
    limit = max(1.5 * expected, 2.0 * float(sp.max()))
    reach = np.ceil(limit / sp).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    lengths = _length_mm(offsets, sp)
    order = np.argsort(lengths, kind="stable")
    offsets, lengths = offsets[order], lengths[order]
    radius = min(limit, float(lengths[min(count, len(lengths)) - 1]))
    keep = lengths <= radius
    return offsets[keep], lengths[keep]


def _length_mm(offsets: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Euclidean length in mm of integer voxel offsets (one per row)."""
    return np.sqrt(((offsets * spacing) ** 2).sum(axis=1))


class NearestSurface:
    """Finds nearest-surface distances inside one flattened array of shape ``shape``.

    Args:
        shape: shape of the array holding both surfaces (margin included).
        spacing: voxel size in mm along each axis.
    """

    def __init__(self, shape: tuple[int, ...], spacing: tuple[float, ...]) -> None:
        self.shape = shape
        self.spacing = np.asarray(spacing, dtype=float)
        offsets, lengths = search_offsets(tuple(spacing))
        steps = offsets @ np.cumprod((1,) + shape[:0:-1])[::-1]  # C-order flat-index steps
        starts = np.concatenate([[0], np.flatnonzero(np.diff(lengths)) + 1])
        ends = np.append(starts[1:], lengths.size)
        self.shells = [
            (int(a), steps[a:b], float(lengths[a])) for a, b in zip(starts, ends, strict=True)
        ]

    @staticmethod
    def margin(spacing: tuple[float, ...]) -> np.ndarray:
        """Voxels of zero margin needed on each side of each axis for the stage-1 probes."""
        return np.abs(search_offsets(tuple(spacing))[0]).max(axis=0)

    def distances(
        self, sources: np.ndarray, target: np.ndarray, target_at: np.ndarray
    ) -> np.ndarray:
        """Distance (mm) from each source voxel to the nearest target voxel.

        Args:
            sources: flat indices of the source voxels (at least the margin from the edges).
            target: the target surface, a flat boolean array of ``prod(shape)`` voxels.
            target_at: flat indices of the target voxels (not empty).
        """
        distances = np.empty(sources.size, dtype=float)
        todo, at = np.arange(sources.size), sources
        free = FREE_OFFSETS[len(self.shape)]
        budget, spent, searched, found_per_probe = None, 0, 0.0, 1.0
        for first, steps, length in self.shells:
            cost = (at.size + OFFSET_COST) * steps.size
            if first >= free:
                if budget is None:
                    budget = BUILD_COST * target_at.size + QUERY_COST * at.size
                spent += cost
                # Stop when the last shell resolved fewer voxels per probe than a voxel left
                # to the tree costs (its query and its share of the build), or when the
                # probes spent would have paid for the whole tree.
                per_voxel = QUERY_COST + BUILD_COST * target_at.size / at.size
                if found_per_probe * per_voxel < 1 or spent > budget:
                    break
            hit = _probe(target, at, steps)
            searched = length  # the voxels left are all farther than this
            found = int(np.count_nonzero(hit))
            found_per_probe = found / cost
            if found:
                distances[todo[hit]] = length
                todo, at = todo[~hit], at[~hit]
                if todo.size == 0:
                    return distances
        distances[todo] = self._far(at, target, target_at, searched)
        return distances

    def _far(
        self, sources: np.ndarray, target: np.ndarray, target_at: np.ndarray, searched: float
    ) -> np.ndarray:
        """Stages 2 and 3 for the sources farther than ``searched`` mm from the target."""
        grid = target.reshape(self.shape)
        centres = np.stack(np.unravel_index(sources, self.shape), axis=1)
        start = 2.0 * max(searched, float(self.spacing.max()))
        out = np.empty(sources.size, dtype=float)
        budget = float(BUILD_COST * target_at.size)
        if sources.size * WINDOW_COST > budget:  # too many for windows to pay
            return self._tree(sources, target_at)
        for i, centre in enumerate(centres):
            found, budget = self._window(grid, centre, start, budget)
            if found is None:  # windows stopped paying: the tree answers the rest
                out[i:] = self._tree(sources[i:], target_at)
                break
            out[i] = found
        return out

    def _window(
        self, grid: np.ndarray, centre: np.ndarray, radius: float, budget: float
    ) -> tuple[float | None, float]:
        """Nearest target voxel to ``centre`` by growing cubes; ``None`` once over budget."""
        while True:
            half = np.ceil(radius / self.spacing).astype(int)
            low = np.maximum(centre - half, 0)
            high = np.minimum(centre + half + 1, self.shape)
            window = grid[tuple(slice(a, b) for a, b in zip(low, high, strict=True))]
            budget -= window.size + WINDOW_COST
            if budget < 0:
                return None, budget
            hits = np.argwhere(window)
            if hits.size:
                nearest = float(_length_mm(hits + (low - centre), self.spacing).min())
                # Any voxel outside the cube is at least (half + 1) voxels away along some
                # axis, so farther than `radius`: a hit within `radius` is the nearest one.
                if nearest <= radius or window.size == grid.size:
                    return nearest, budget
            elif window.size == grid.size:  # no target at all (callers never ask this)
                return float("inf"), budget
            radius *= 2.0

    def _tree(self, sources: np.ndarray, target_at: np.ndarray) -> np.ndarray:
        """Exact nearest-neighbour distances in mm; an unbalanced tree builds several times
        faster than a balanced one and answers these queries as fast."""
        target_mm = np.stack(np.unravel_index(target_at, self.shape), axis=1) * self.spacing
        source_mm = np.stack(np.unravel_index(sources, self.shape), axis=1) * self.spacing
        tree = cKDTree(target_mm, leafsize=64, balanced_tree=False, compact_nodes=False)
        return tree.query(source_mm, k=1)[0]


def _probe(target: np.ndarray, at: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Whether ``target`` is set at ``at + step`` for any of ``steps``, for each index in ``at``.

    One gather per offset into preallocated buffers: faster than one 2-D gather per shell.
    """
    hit, probe, looked = np.zeros(at.size, dtype=bool), np.empty_like(at), np.empty(at.size, bool)
    for step in steps:
        np.add(at, step, out=probe)
        target.take(probe, out=looked)
        hit |= looked
    return hit
