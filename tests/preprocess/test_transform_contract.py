"""The contract every registered transform keeps, in 2D and 3D (parametrized over TRANSFORMS)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.preprocess import TRANSFORMS, RandomTransform, Transform, build_pipeline
from medlens.preprocess.pipeline import build_transform

Shape = tuple[int, ...]
SAME: Callable[[Shape, tuple[float, ...]], Shape] = lambda shape, spacing: shape  # noqa: E731


def _all(n: int) -> Callable[[Shape, tuple[float, ...]], Shape]:
    return lambda shape, spacing: (n,) * len(shape)


# name -> (constructor arguments, expected spatial shape from (input shape, input spacing) or
#          None where it depends on the draw, expected channel count or None for "as the input")
EXAMPLES: dict[str, tuple[dict, Callable[[Shape, tuple[float, ...]], Shape] | None, int | None]] = {
    "scale_intensity": ({}, SAME, None),
    "fixed_scale": ({"divisor": 2.0, "mean": 0.25, "std": 0.5}, SAME, None),
    "z_score": ({"nonzero": True}, SAME, None),
    "percentile_clip": ({"lower": 1.0, "upper": 99.0}, SAME, None),
    "ct_window": ({"preset": "lung"}, SAME, None),
    "to_channels": ({"channels": 3}, SAME, 3),
    "select_channels": ({"channels": [0]}, SAME, 1),
    "resize": ({"size": 8}, _all(8), None),
    "resample_to_spacing": (
        {"spacing": 2.0},
        lambda shape, spacing: tuple(
            round(n * s / 2.0) for n, s in zip(shape, spacing, strict=True)
        ),
        None,
    ),
    "crop_or_pad": ({"size": 16}, _all(16), None),
    "center_crop": ({"size": 6}, _all(6), None),
    "pad_to_multiple": (
        {"multiple": 16},
        lambda shape, spacing: tuple(math.ceil(n / 16) * 16 for n in shape),
        None,
    ),
    "crop": ({"start": -2, "size": 7}, _all(7), None),
    "clahe": ({"clip_limit": 0.02}, SAME, None),
    "histogram_equalization": ({"nbins": 64}, SAME, None),
    "gamma": ({"gamma": 0.8}, SAME, None),
    "gaussian_denoise": ({"sigma_mm": 1.0}, SAME, None),
    "median_denoise": ({"size": 3}, SAME, None),
    "nlm_denoise": ({}, SAME, None),
    "flip": ({"axes": [0, -1]}, SAME, None),
    "rotate": ({"degrees": 30.0}, SAME, None),
    "affine": ({"degrees": 10.0, "scale": 1.1, "translation": 1.5}, SAME, None),
    "elastic": ({"alpha": 2.0, "sigma": 3.0, "seed": 7}, SAME, None),
    "brightness_contrast": ({"brightness": 0.1, "contrast": 1.2}, SAME, None),
    "noise": ({"std": 0.1, "seed": 3}, SAME, None),
    "blur": ({"sigma": 1.0}, SAME, None),
    "identity": ({}, SAME, None),
    "random_flip": ({"axes": [0, 1], "p": 0.5}, SAME, None),
    "random_rotate": ({"degrees": 20.0, "p": 1.0}, SAME, None),
    "random_affine": ({"degrees": 10, "scale": 0.1, "translation": 2, "p": 1.0}, SAME, None),
    "random_elastic": ({"alpha": [1.0, 3.0], "sigma": 3.0, "p": 1.0}, SAME, None),
    "random_brightness_contrast": ({"brightness": 0.2, "contrast": 0.2, "p": 1.0}, SAME, None),
    "random_gamma": ({"gamma": [0.7, 1.5], "p": 1.0}, SAME, None),
    "random_noise": ({"std": [0.01, 0.1], "p": 1.0}, SAME, None),
    "random_blur": ({"sigma": [0.5, 1.5], "p": 1.0}, SAME, None),
    "random_crop": ({"size": 8, "padding": 2, "p": 1.0}, _all(8), None),
    "rotate90": (
        {"k": 1, "plane": [0, -1]},
        lambda shape, spacing: (*shape[-1:], *shape[1:-1], shape[0]),
        None,
    ),
    "rescale": ({"factor": 0.5}, lambda shape, spacing: tuple(round(n / 2) for n in shape), None),
    "fit_size": (
        {"min_size": 5},
        lambda shape, spacing: tuple(round(n * 5 / min(shape)) for n in shape),
        None,
    ),
    "random_rotate90": ({"p": 0.5}, None, None),
    "random_scale": ({"scale": [0.5, 0.9], "p": 1.0}, None, None),
}

NAMES = TRANSFORMS.names()
SHAPES = {"2d": ((1, 20, 24), (1.0, 1.0)), "3d": ((1, 10, 12, 14), (2.0, 1.0, 1.0))}


def _image(kind: str) -> Image:
    shape, spacing = SHAPES[kind]
    array = np.random.default_rng(42).random(shape, dtype=np.float32)
    affine = np.diag([*spacing, *([1.0] * (4 - len(spacing)))])
    return Image(
        array,
        spacing,
        affine=affine,
        source=f"synthetic-{kind}",
        meta={"history": [{"name": "reader"}]},
    )


def _build(name: str) -> Transform | RandomTransform:
    kwargs, _, _ = EXAMPLES[name]
    return build_transform({"name": name, **kwargs})


def _run(t: Transform | RandomTransform, image: Image, seed: int = 0) -> Image:
    if isinstance(t, RandomTransform):
        return t(image, np.random.default_rng(seed))
    return t(image)


def test_every_registered_transform_has_an_example() -> None:
    assert set(NAMES) == set(EXAMPLES)


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("name", NAMES)
def test_output_shape_dtype_and_input_untouched(name: str, kind: str) -> None:
    image = _image(kind)
    before, history_before = image.array.copy(), [dict(h) for h in image.meta["history"]]
    out = _run(_build(name), image)

    _, expected_shape, channels = EXAMPLES[name]
    assert out.array.dtype == np.float32
    if expected_shape is not None:
        assert out.spatial_shape == expected_shape(image.spatial_shape, image.spacing)
    assert out.num_channels == (channels or image.num_channels)
    assert np.isfinite(out.array).all()
    assert out is not image and not np.shares_memory(out.array, image.array)
    np.testing.assert_array_equal(image.array, before)
    assert image.meta["history"] == history_before
    assert out.meta["history"][:-1] == history_before
    assert out.meta["history"][-1]["name"] in TRANSFORMS


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_gives_identical_output(name: str, kind: str) -> None:
    image = _image(kind)
    t = _build(name)
    config = json.loads(json.dumps(t.to_config()))
    rebuilt = build_pipeline([config])
    assert rebuilt.to_config() == [t.to_config()]
    expected = _run(t, image, seed=5)
    again = rebuilt(image, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again.array, expected.array)


RANDOM = [n for n in NAMES if issubclass(TRANSFORMS.get(n), RandomTransform)]


def test_random_transforms_are_the_ones_named_random() -> None:
    assert [n for n in NAMES if n.startswith("random_")] == RANDOM


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("name", RANDOM)
def test_random_transform_is_reproducible_and_replayable(name: str, kind: str) -> None:
    image = _image(kind)
    t = _build(name)
    first = t(image, np.random.default_rng(11))
    second = t(image, np.random.default_rng(11))
    np.testing.assert_array_equal(first.array, second.array)
    assert first.meta["history"][-1] == second.meta["history"][-1]

    twin_config = first.meta["history"][-1]
    assert not issubclass(TRANSFORMS.get(twin_config["name"]), RandomTransform)
    twin = t.draw(np.random.default_rng(11), image)
    assert twin.to_config() == twin_config
    replayed = build_transform(json.loads(json.dumps(twin_config)))(image)
    np.testing.assert_array_equal(replayed.array, first.array)


@pytest.mark.parametrize("name", RANDOM)
def test_random_transform_draws_differ_across_seeds(name: str) -> None:
    image = _image("2d")
    t = _build(name)
    drawn = {
        json.dumps(t.draw(np.random.default_rng(seed), image).to_config()) for seed in range(6)
    }
    assert len(drawn) > 1
