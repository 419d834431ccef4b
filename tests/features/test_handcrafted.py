"""handcrafted_features: names, ROI and channel handling, physical units, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.features import FAMILIES, handcrafted_features


def _image(rng: np.random.Generator, shape: tuple[int, ...], spacing=None, **kw) -> Image:
    spacing = spacing or (1.0,) * (len(shape) - 1)
    return Image(rng.normal(100, 20, size=shape), spacing, **kw)


def test_2d_and_3d_give_every_family_with_stable_names(rng: np.random.Generator) -> None:
    f2 = handcrafted_features(_image(rng, (1, 24, 20)))
    f3 = handcrafted_features(_image(rng, (1, 10, 12, 14), (2.0, 1.0, 1.0)))
    for f in (f2, f3):
        assert {name.split("_")[0] for name in f} == set(FAMILIES)
        assert all(np.isfinite(v) for v in f.values())
    assert "shape_area_mm2" in f2 and "shape_volume_mm3" in f3
    assert "firstorder_mean" in f2 and "glcm_contrast" in f3 and "glszm_zone_percentage" in f3
    again = handcrafted_features(_image(rng, (1, 30, 30)))
    assert list(again) == list(f2)


def test_features_see_only_the_roi(rng: np.random.Generator) -> None:
    array = rng.normal(size=(1, 20, 20))
    mask = np.zeros((20, 20), dtype=bool)
    mask[4:12, 5:15] = True
    crop = Image(array[:, 4:12, 5:15].copy(), (1.0, 1.0))
    outside_changed = array.copy()
    outside_changed[0, ~mask] = 1e6
    full = handcrafted_features(Image(outside_changed, (1.0, 1.0)), mask[None])
    assert full == pytest.approx(handcrafted_features(crop))


def test_spacing_scales_shape_but_not_texture(rng: np.random.Generator) -> None:
    array = rng.normal(size=(1, 16, 16))
    mask = np.zeros((16, 16))
    mask[3:13, 2:9] = 1
    base = handcrafted_features(Image(array, (1.0, 1.0)), mask)
    doubled = handcrafted_features(Image(array, (2.0, 2.0)), mask)
    assert doubled["shape_area_mm2"] == pytest.approx(4 * base["shape_area_mm2"])
    assert doubled["shape_perimeter_mm"] == pytest.approx(2 * base["shape_perimeter_mm"])
    assert doubled["shape_circularity"] == pytest.approx(base["shape_circularity"])
    for name in ("glcm_contrast", "glrlm_run_percentage", "glszm_zone_percentage"):
        assert doubled[name] == pytest.approx(base[name])


def test_channel_is_chosen_explicitly_for_colour_images(rng: np.random.Generator) -> None:
    rgb = _image(rng, (3, 12, 12), source="photo.png")
    with pytest.raises(InputError, match="photo.png.*3 channels"):
        handcrafted_features(rgb)
    green = handcrafted_features(rgb, channel=1, families=("firstorder",))
    assert green["firstorder_mean"] == pytest.approx(rgb.array[1].mean())


@pytest.mark.parametrize(
    ("mask", "reason"),
    [
        (np.zeros((8, 8)), "empty"),
        (np.ones((8, 9)), "mask shape"),
        (np.full((8, 8), np.nan), "NaN"),
    ],
)
def test_bad_masks_are_input_errors(rng: np.random.Generator, mask, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        handcrafted_features(_image(rng, (1, 8, 8), source="ct.nii.gz"), mask)


def test_nan_in_the_image_is_an_input_error(rng: np.random.Generator) -> None:
    image = _image(rng, (1, 8, 8), source="scan.dcm")
    image.array[0, 3, 3] = np.nan
    with pytest.raises(InputError, match="scan.dcm.*NaN"):
        handcrafted_features(image)


def test_unknown_family_is_a_config_error(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="wavelet"):
        handcrafted_features(_image(rng, (1, 8, 8)), families=("firstorder", "wavelet"))
