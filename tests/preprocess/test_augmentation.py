"""What the random augmentations draw: ranges, probabilities and their twins."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import ConfigError
from medlens.preprocess.augmentation import (
    Identity,
    RandomAffine,
    RandomBlur,
    RandomBrightnessContrast,
    RandomCrop,
    RandomElastic,
    RandomFlip,
    RandomGamma,
    RandomNoise,
    RandomRotate,
)
from medlens.preprocess.enhancement import Gamma
from medlens.preprocess.geometric import Flip, Rotate
from medlens.preprocess.spatial import Crop


def _image(shape: tuple[int, ...]) -> Image:
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    return Image(array, (1.0,) * (len(shape) - 1))


IMAGE_2D = _image((1, 28, 28))
IMAGE_3D = _image((1, 16, 16, 16))


def _draws(transform, image: Image, n: int = 200) -> list:
    rng = np.random.default_rng(123)
    return [transform.draw(rng, image) for _ in range(n)]


def test_random_flip_draws_flip_or_identity() -> None:
    assert RandomFlip(axes=[0, 1], p=1.0).draw(np.random.default_rng(0), IMAGE_2D).to_config() == {
        "name": "flip",
        "axes": [0, 1],
    }
    assert isinstance(RandomFlip(p=0.0).draw(np.random.default_rng(0), IMAGE_2D), Identity)
    twins = _draws(RandomFlip(axes=-1, p=0.5), IMAGE_2D)
    flips = [t for t in twins if isinstance(t, Flip)]
    assert all(t.axes == [1] for t in flips)
    assert 0.35 < len(flips) / len(twins) < 0.65


def test_random_flip_output_is_an_exact_flip() -> None:
    out = RandomFlip(axes=[2], p=1.0)(IMAGE_3D, np.random.default_rng(0))
    np.testing.assert_array_equal(out.array, IMAGE_3D.array[:, :, :, ::-1])
    assert out.meta["history"][-1] == {"name": "flip", "axes": [2]}


@pytest.mark.parametrize(
    "transform",
    [
        RandomRotate(p=0.0),
        RandomAffine(p=0.0),
        RandomElastic(p=0.0),
        RandomBrightnessContrast(p=0.0),
        RandomGamma(p=0.0),
        RandomNoise(p=0.0),
        RandomBlur(p=0.0),
    ],
)
def test_probability_zero_always_draws_identity(transform) -> None:
    assert all(isinstance(t, Identity) for t in _draws(transform, IMAGE_2D, n=20))


def test_probability_is_the_share_of_applied_draws() -> None:
    twins = _draws(RandomNoise(std=0.1, p=0.3), IMAGE_2D, n=400)
    applied = sum(not isinstance(t, Identity) for t in twins)
    assert 0.24 < applied / len(twins) < 0.36


def test_random_rotate_draws_within_range_and_plane() -> None:
    twins = _draws(RandomRotate(degrees=[5, 20], p=1.0), IMAGE_2D)
    angles = [t.degrees[0] for t in twins]
    assert all(isinstance(t, Rotate) and len(t.degrees) == 1 for t in twins)
    assert min(angles) >= 5 and max(angles) <= 20 and max(angles) - min(angles) > 10

    all_planes = _draws(RandomRotate(degrees=30, p=1.0), IMAGE_3D, n=5)
    assert all(len(t.degrees) == 3 and all(a != 0 for a in t.degrees) for t in all_planes)
    one_plane = _draws(RandomRotate(degrees=30, plane=[1, 2], p=1.0), IMAGE_3D, n=5)
    assert all(t.degrees[1:] == [0.0, 0.0] and t.degrees[0] != 0 for t in one_plane)


def test_random_affine_draws_each_parameter_within_its_range() -> None:
    twins = _draws(RandomAffine(degrees=10, scale=[0.8, 1.2], translation=3, p=1.0), IMAGE_3D)
    for t in twins:
        assert len(t.degrees) == 3 and all(-10 <= a <= 10 for a in t.degrees)
        assert 0.8 <= t.scale <= 1.2
        assert len(t.translation) == 3 and all(-3 <= s <= 3 for s in t.translation)


def test_random_elastic_draws_alpha_and_a_seed() -> None:
    twins = _draws(RandomElastic(alpha=[1.0, 4.0], sigma=3.0, p=1.0), IMAGE_2D, n=50)
    assert all(1.0 <= t.alpha <= 4.0 and t.sigma == 3.0 for t in twins)
    assert len({t.seed for t in twins}) == 50


def test_random_gamma_is_log_uniform_and_within_range() -> None:
    twins = _draws(RandomGamma(gamma=2.0, p=1.0), IMAGE_2D, n=400)
    gammas = np.array([t.gamma for t in twins])
    assert all(isinstance(t, Gamma) for t in twins)
    assert gammas.min() >= 0.5 and gammas.max() <= 2.0
    assert 0.4 < np.mean(gammas < 1.0) < 0.6


def test_random_brightness_contrast_noise_and_blur_ranges() -> None:
    bc = _draws(RandomBrightnessContrast(brightness=0.2, contrast=[0.5, 0.9], p=1.0), IMAGE_2D)
    assert all(-0.2 <= t.brightness <= 0.2 and 0.5 <= t.contrast <= 0.9 for t in bc)
    noise = _draws(RandomNoise(std=0.05, p=1.0), IMAGE_2D)
    assert all(0.0 <= t.std <= 0.05 for t in noise)
    blur = _draws(RandomBlur(sigma=[0.5, 1.0], p=1.0), IMAGE_2D)
    assert all(0.5 <= t.sigma <= 1.0 for t in blur)


def test_random_crop_positions_stay_within_the_padding() -> None:
    twins = _draws(RandomCrop(size=28, padding=4), IMAGE_2D, n=300)
    starts = np.array([t.start for t in twins])
    assert all(isinstance(t, Crop) and t.size == [28, 28] for t in twins)
    assert starts.min() == -4 and starts.max() == 4
    centred = RandomCrop(size=[20, 10], padding=4, p=0.0).draw(np.random.default_rng(0), IMAGE_2D)
    assert centred.start == [4, 9]


def test_random_crop_of_a_small_image_places_it_inside_the_window() -> None:
    small = _image((1, 6, 6))
    out = RandomCrop(size=10)(small, np.random.default_rng(3)).array
    assert out.shape == (1, 10, 10)
    assert np.isclose(out.sum(), small.array.sum())


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (RandomRotate, {"degrees": [5]}, "random_rotate.degrees"),
        (RandomRotate, {"plane": [0]}, "random_rotate.plane"),
        (RandomNoise, {"p": 1.5}, "random_noise.p"),
        (RandomGamma, {"gamma": [0.0, 2.0]}, "random_gamma.gamma"),
        (RandomAffine, {"scale": 1.5}, "random_affine.scale"),
        (RandomBlur, {"sigma": [1.0, 0.5]}, "random_blur.sigma"),
        (RandomCrop, {"size": 0}, "random_crop.size"),
    ],
)
def test_bad_parameters_raise_config_error_with_the_key(cls: type, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert info.value.key == key
