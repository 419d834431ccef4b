"""Surface metrics (HD, HD95, ASSD, NSD) against MONAI, a distance transform, and by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)
from monai.metrics.utils import get_edge_surface_distance
from scipy import ndimage

from medlens.errors import InputError
from medlens.metrics import nearest_surface
from medlens.metrics.surface import (
    average_symmetric_surface_distance,
    hausdorff_distance,
    hausdorff_distance_95,
    normalized_surface_dice,
    surface_metrics,
)
from medlens.metrics.surface_distance import mask_surface, surface_distances

RTOL = 1e-6
NAMES = (
    "hausdorff_distance",
    "hausdorff_distance_95",
    "average_symmetric_surface_distance",
    "normalized_surface_dice",
)


def ball(
    shape: tuple[int, ...], centre: tuple[float, ...], radius_mm: float, spacing
) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of ``centre`` (voxel coordinates)."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return (
        sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
        <= radius_mm**2
    )


def blobs(shape: tuple[int, ...], seed: int, sigma: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """A reference from thresholded smooth noise and a prediction with boundary errors."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    field /= field.std()
    noisy = ndimage.gaussian_filter(field + 0.5 * rng.standard_normal(shape), 1.0)
    return noisy > 0.1, field > 0


def far_apart(shape: tuple[int, ...], spacing) -> tuple[np.ndarray, np.ndarray]:
    """A prediction with a false-positive blob far from everything: exercises the KD-tree."""
    ref = ball(shape, tuple(n * 0.3 for n in shape), 6 * max(spacing), spacing)
    pred = np.roll(ref, 2, axis=0)
    pred[(slice(-5, -1),) * len(shape)] = True
    return pred, ref


def case(name: str, ndim: int, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    shape = (64,) * ndim if ndim == 2 else (40, 44, 36)
    if name == "spheres":
        ref = ball(shape, tuple(n / 2 for n in shape), 12.0, spacing)
        pred = ball(shape, tuple(n / 2 + 2 for n in shape), 10.0, spacing)
        return pred, ref
    if name == "blobs":
        return blobs(shape, seed=ndim)
    return far_apart(shape, spacing)


def monai_metrics(pred, ref, spacing, tolerance_mm: float) -> dict[str, float]:
    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(ref[None, None].astype(np.float32))
    common = {"include_background": True, "spacing": list(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks, then answers
        return {
            "hausdorff_distance": compute_hausdorff_distance(y_pred, y, **common).item(),
            "hausdorff_distance_95": compute_hausdorff_distance(
                y_pred, y, percentile=95, **common
            ).item(),
            "average_symmetric_surface_distance": compute_average_surface_distance(
                y_pred, y, symmetric=True, **common
            ).item(),
            "normalized_surface_dice": compute_surface_dice(
                y_pred, y, [tolerance_mm], **common
            ).item(),
        }


CASES = [
    ("spheres", 3, (1.0, 1.0, 1.0)),
    ("spheres", 3, (0.8, 1.1, 2.5)),
    ("spheres", 2, (0.7, 1.3)),
    ("blobs", 3, (1.0, 1.0, 1.0)),
    ("blobs", 3, (0.6, 0.6, 3.0)),
    ("blobs", 2, (1.0, 1.0)),
    ("far_apart", 3, (1.0, 1.0, 1.0)),
    ("far_apart", 2, (0.5, 2.0)),
]


@pytest.mark.parametrize(("name", "ndim", "spacing"), CASES)
@pytest.mark.parametrize("tolerance_mm", [1.0, 1.5])
def test_surface_metrics_match_monai(name, ndim, spacing, tolerance_mm):
    pred, ref = case(name, ndim, spacing)
    ours = surface_metrics(pred, ref, spacing, tolerance_mm=tolerance_mm)
    theirs = monai_metrics(pred, ref, spacing, tolerance_mm)
    assert 0 < ours["normalized_surface_dice"] < 1  # a case that tells metrics apart
    for key in NAMES:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=RTOL, err_msg=key)


@pytest.mark.parametrize(("name", "ndim", "spacing"), CASES)
def test_directed_distances_equal_a_distance_transform(name, ndim, spacing):
    """The brief's reference method: EDT of the complement of one surface, read on the other."""
    pred, ref = case(name, ndim, spacing)
    surface_pred, surface_ref = mask_surface(pred), mask_surface(ref)
    expected_pred_to_ref = ndimage.distance_transform_edt(~surface_ref, sampling=spacing)
    expected_ref_to_pred = ndimage.distance_transform_edt(~surface_pred, sampling=spacing)
    got = surface_distances(pred, ref, spacing)
    np.testing.assert_allclose(got.pred_to_ref, expected_pred_to_ref[surface_pred], rtol=1e-12)
    np.testing.assert_allclose(got.ref_to_pred, expected_ref_to_pred[surface_ref], rtol=1e-12)


STAGES = {  # settings of nearest_surface -> the stages that must then run
    "shells_windows": ({"BUILD_COST": 10**9}, {"_window"}),
    "shells_tree": ({"WINDOW_COST": 10**12}, {"_tree"}),
    "windows_only": ({"SEARCH_OFFSETS": {2: 1, 3: 1}, "BUILD_COST": 10**9}, {"_window"}),
    "tree_only": ({"SEARCH_OFFSETS": {2: 1, 3: 1}, "WINDOW_COST": 10**12}, {"_tree"}),
}


STAGE_CASES = [(c, s) for c in CASES[6:] for s in STAGES]  # far_apart: near and far voxels
STAGE_CASES += [(CASES[4], "windows_only"), (CASES[4], "tree_only")]  # anisotropic blobs


@pytest.mark.parametrize(
    ("spec", "stages"), STAGE_CASES, ids=[f"{c[0]}-{c[1]}d-{s}" for c, s in STAGE_CASES]
)
def test_every_search_stage_gives_the_same_distances(monkeypatch, spec, stages):
    """Shells, cube windows and the KD-tree answer the same voxels with the same distances."""
    name, ndim, spacing = spec
    pred, ref = case(name, ndim, spacing)
    default = surface_distances(pred, ref, spacing)
    settings, expected_stages = STAGES[stages]
    for key, value in settings.items():
        monkeypatch.setattr(nearest_surface, key, value)
    calls: set[str] = set()
    for method in ("_window", "_tree"):
        original = getattr(nearest_surface.NearestSurface, method)

        def counted(self, *args, _original=original, _method=method):
            calls.add(_method)
            return _original(self, *args)

        monkeypatch.setattr(nearest_surface.NearestSurface, method, counted)
    nearest_surface.search_offsets.cache_clear()
    try:
        other = surface_distances(pred, ref, spacing)
    finally:
        nearest_surface.search_offsets.cache_clear()
    assert calls == expected_stages
    np.testing.assert_allclose(other.pred_to_ref, default.pred_to_ref, rtol=1e-12)
    np.testing.assert_allclose(other.ref_to_pred, default.ref_to_pred, rtol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_random_masks_and_spacings_match_a_distance_transform(seed):
    """Speckled masks (many tiny islands, far voxels) with random shapes and spacings."""
    rng = np.random.default_rng(100 + seed)
    ndim = 2 + seed % 2
    shape = tuple(rng.integers(8, 40 if ndim == 2 else 22, ndim))
    spacing = tuple(rng.uniform(0.3, 3.0, ndim))
    pred = rng.random(shape) < rng.uniform(0.002, 0.3)
    ref = rng.random(shape) < 0.01
    ref.flat[rng.integers(ref.size)] = True  # a distance transform needs a surface
    ref = ndimage.binary_dilation(ref, iterations=int(rng.integers(1, 3)))
    got = surface_distances(pred, ref, spacing)
    surface_pred, surface_ref = mask_surface(pred), mask_surface(ref)
    to_ref = ndimage.distance_transform_edt(~surface_ref, sampling=spacing)[surface_pred]
    to_pred = ndimage.distance_transform_edt(~surface_pred, sampling=spacing)[surface_ref]
    np.testing.assert_allclose(got.pred_to_ref, to_ref, rtol=1e-12)
    np.testing.assert_allclose(got.ref_to_pred, to_pred, rtol=1e-12)


def test_far_voxels_are_beyond_the_searched_neighbourhood():
    """The far_apart cases really need the KD-tree: some distance exceeds the search radius."""
    for spacing in ((1.0, 1.0, 1.0), (0.5, 2.0)):
        pred, ref = far_apart((40, 44, 36)[: len(spacing)], spacing)
        radius = nearest_surface.search_offsets(spacing)[1].max()
        assert surface_distances(pred, ref, spacing).pred_to_ref.max() > 2 * radius


@pytest.mark.parametrize("ndim", [2, 3])
def test_surface_is_the_mask_minus_its_erosion(ndim):
    rng = np.random.default_rng(ndim)
    mask = ndimage.gaussian_filter(rng.standard_normal((30,) * ndim), 1.5) > 0  # touches borders
    expected = mask & ~ndimage.binary_erosion(mask)  # cross-shaped element, border_value=0
    np.testing.assert_array_equal(mask_surface(mask), expected)


def test_hand_computed_two_voxels():
    """One voxel each, 3 voxels apart along an axis of 2 mm: every distance is 6 mm."""
    pred, ref = np.zeros((5, 5, 8), bool), np.zeros((5, 5, 8), bool)
    pred[2, 2, 1], ref[2, 2, 4] = True, True
    spacing = (1.0, 1.0, 2.0)
    assert hausdorff_distance(pred, ref, spacing) == 6.0
    assert hausdorff_distance_95(pred, ref, spacing) == 6.0
    assert average_symmetric_surface_distance(pred, ref, spacing) == 6.0
    assert normalized_surface_dice(pred, ref, spacing, tolerance_mm=5.9) == 0.0
    assert normalized_surface_dice(pred, ref, spacing, tolerance_mm=6.0) == 1.0


def test_hand_computed_square_shifted_in_2d():
    """A 4x4 square (rows 1-4, columns 2-5) moved down one row; rows 2 mm, columns 0.5 mm."""
    ref = np.zeros((8, 8), bool)
    ref[1:5, 2:6] = True
    pred = np.roll(ref, 1, axis=0)
    spacing = (2.0, 0.5)
    got = surface_distances(pred, ref, spacing)
    # The prediction's 12 surface voxels: its top row's two corners and its side voxels in
    # rows 3-4 lie on the reference surface (0 mm, 6 voxels); the top row's middle two are one
    # column (0.5 mm) from the reference's side columns; its bottom row (4 voxels) is one row
    # (2 mm) below the reference's bottom row.
    expected_pred_to_ref = sorted([0, 0.5, 0.5, 0, 0, 0, 0, 0, 2, 2, 2, 2])
    np.testing.assert_allclose(sorted(got.pred_to_ref), expected_pred_to_ref)
    # By symmetry (moving the reference up one row) the other direction is the same multiset.
    np.testing.assert_allclose(sorted(got.ref_to_pred), expected_pred_to_ref)
    assert average_symmetric_surface_distance(pred, ref, spacing) == pytest.approx(9.0 / 12)


EMPTY = np.zeros((12, 12, 12), bool)
CUBE = np.zeros((12, 12, 12), bool)
CUBE[3:8, 3:8, 3:8] = True


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        (EMPTY, EMPTY, [np.nan, np.nan, np.nan, np.nan]),
        (EMPTY, CUBE, [np.inf, np.inf, np.inf, 0.0]),
        (CUBE, EMPTY, [np.inf, np.inf, np.inf, 0.0]),
    ],
    ids=["both_empty", "pred_empty", "ref_empty"],
)
def test_empty_masks_follow_monai(pred, ref, expected):
    """Both empty: NaN; one empty: inf (NSD 0), as MONAI — except HD95, where MONAI's
    ``torch.quantile`` interpolates between infinities and returns NaN; medlens says inf."""
    spacing = (1.0, 2.0, 1.5)
    ours = surface_metrics(pred, ref, spacing)
    np.testing.assert_array_equal([ours[k] for k in NAMES], expected)
    theirs = monai_metrics(pred, ref, spacing, 1.0)
    expected_monai = list(expected)
    expected_monai[1] = np.nan
    np.testing.assert_array_equal([theirs[k] for k in NAMES], expected_monai)


def test_field_of_view_matches_monai_mask():
    """Surface voxels outside the FOV are dropped from both surfaces, as MONAI's ``mask``."""
    pred, ref = case("blobs", 3, (1.0, 1.0, 1.0))
    fov = ball(pred.shape, tuple(n / 2 for n in pred.shape), 15.0, (1, 1, 1))
    spacing = (0.9, 1.0, 1.2)
    got = surface_distances(pred, ref, spacing, fov_mask=fov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (pred_to_ref, ref_to_pred), _ = get_edge_surface_distance(
            torch.from_numpy(pred),
            torch.from_numpy(ref),
            spacing=spacing,
            symmetric=True,
            mask=torch.from_numpy(fov),
        )
    np.testing.assert_allclose(got.pred_to_ref, pred_to_ref.numpy(), rtol=RTOL)
    np.testing.assert_allclose(got.ref_to_pred, ref_to_pred.numpy(), rtol=RTOL)
    assert got.pred_to_ref.size < mask_surface(pred).sum()  # the FOV did drop voxels


def test_distances_scale_with_spacing():
    pred, ref = case("spheres", 3, (1.0, 1.0, 1.0))
    in_voxels = surface_metrics(pred, ref)
    in_mm = surface_metrics(pred, ref, 0.5)
    for key in NAMES[:3]:
        assert in_mm[key] == pytest.approx(in_voxels[key] * 0.5, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred": np.full((6, 6), 2)}, "not binary"),
        ({"pred": np.zeros((6, 7), bool)}, "differs"),
        ({"spacing": (1.0, 1.0, 1.0)}, "expected 2 values"),
        ({"spacing": (1.0, -1.0)}, "positive"),
        ({"tolerance_mm": -1.0}, ">= 0"),
        ({"pred": np.full((6, 6), np.nan)}, "NaN"),
        ({"fov_mask": np.ones((5, 5), bool)}, "fov_mask"),
    ],
)
def test_bad_input_raises_input_error(kwargs, message):
    args = {"pred": np.eye(6, dtype=bool), "ref": np.eye(6, dtype=bool), "spacing": None}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        surface_metrics(
            args["pred"],
            args["ref"],
            args["spacing"],
            tolerance_mm=args.get("tolerance_mm", 1.0),
            fov_mask=args.get("fov_mask"),
        )
