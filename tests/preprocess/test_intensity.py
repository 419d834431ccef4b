"""Value tests of the intensity transforms."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.preprocess.intensity import (
    CT_WINDOW_PRESETS,
    CTWindow,
    FixedScale,
    PercentileClip,
    ScaleIntensity,
    SelectChannels,
    ToChannels,
    ZScore,
)


def _image(array: np.ndarray) -> Image:
    array = np.asarray(array, dtype=np.float32)
    return Image(array, (1.0,) * (array.ndim - 1), source="test.npz#0")


def test_ct_window_lung_preset_maps_known_hounsfield_units() -> None:
    hu = np.array([[[-2000.0, -1350.0, -600.0, 150.0, 1000.0]]])
    out = CTWindow(preset="lung")(_image(hu)).array
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("preset", list(CT_WINDOW_PRESETS))
def test_ct_window_preset_equals_its_center_and_width(preset: str) -> None:
    hu = np.linspace(-1500, 1500, 2 * 30 * 30).reshape(2, 30, 30)
    center, width = CT_WINDOW_PRESETS[preset]
    by_name = CTWindow(preset=preset)(_image(hu)).array
    by_value = CTWindow(center=center, width=width)(_image(hu)).array
    np.testing.assert_array_equal(by_name, by_value)
    assert by_name.min() == 0.0 and by_name.max() == 1.0


def test_ct_window_rejects_unknown_preset_listing_the_presets() -> None:
    with pytest.raises(ConfigError) as info:
        CTWindow(preset="lungs")
    assert info.value.key == "ct_window.preset"
    for preset in CT_WINDOW_PRESETS:
        assert preset in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{}, {"center": 40.0}, {"preset": "lung", "width": 100.0}, {"center": 0, "width": 0}]
)
def test_ct_window_needs_a_preset_or_a_positive_window(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        CTWindow(**kwargs)


def test_z_score_gives_zero_mean_unit_sd_per_channel() -> None:
    rng = np.random.default_rng(0)
    array = np.stack([rng.normal(100.0, 20.0, (16, 16, 16)), rng.normal(-3.0, 0.5, (16, 16, 16))])
    out = ZScore()(_image(array)).array
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-4)


def test_z_score_nonzero_keeps_background_and_standardises_foreground() -> None:
    rng = np.random.default_rng(1)
    array = np.zeros((1, 32, 32))
    array[0, 8:24, 8:24] = rng.normal(500.0, 50.0, (16, 16))
    out = ZScore(nonzero=True)(_image(array)).array[0]
    foreground = out[8:24, 8:24]
    assert np.all(out[:8] == 0) and np.all(out[:, :8] == 0)
    assert abs(foreground.mean()) < 1e-4 and abs(foreground.std() - 1.0) < 1e-4


def test_z_score_of_a_constant_channel_is_zero() -> None:
    out = ZScore()(_image(np.full((1, 8, 8), 7.0))).array
    assert np.all(out == 0)


def test_scale_intensity_maps_min_and_max_to_the_output_range() -> None:
    array = np.random.default_rng(2).normal(50.0, 10.0, (2, 12, 12))
    out = ScaleIntensity()(_image(array)).array
    assert out.min() == pytest.approx(0.0) and out.max() == pytest.approx(1.0)
    out = ScaleIntensity(out_min=-1.0, out_max=1.0)(_image(array)).array
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)
    # one min-max over all channels, so their relative levels are kept
    assert np.argmax(array.reshape(-1)) == np.argmax(out.reshape(-1))


def test_scale_intensity_of_a_constant_image_is_zeros_not_nan() -> None:
    out = ScaleIntensity()(_image(np.full((1, 5, 5, 5), 3.0))).array
    assert np.all(out == 0.0)


def test_normalisers_reject_nan_naming_the_source() -> None:
    array = np.ones((1, 4, 4))
    array[0, 1, 1] = np.nan
    for transform in (ScaleIntensity(), ZScore(), PercentileClip(), CTWindow(preset="bone")):
        with pytest.raises(InputError, match="test.npz#0"):
            transform(_image(array))


def test_fixed_scale_divides_then_standardises_per_channel() -> None:
    array = np.stack([np.full((4, 4), 255.0), np.full((4, 4), 51.0)])
    out = FixedScale(divisor=255.0)(_image(array)).array
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 0.2], rtol=1e-6)
    out = FixedScale(divisor=255.0, mean=[0.5, 0.2], std=[0.25, 0.1])(_image(array)).array
    np.testing.assert_allclose(out[:, 0, 0], [2.0, 0.0], atol=1e-6)


def test_fixed_scale_checks_its_constants() -> None:
    with pytest.raises(ConfigError):
        FixedScale(mean=0.5)  # std missing
    with pytest.raises(ConfigError):
        FixedScale(divisor=0)
    with pytest.raises(InputError, match="3 values for 2 channels"):
        FixedScale(mean=[0.1, 0.2, 0.3], std=[1, 1, 1])(_image(np.ones((2, 3, 3))))


def test_percentile_clip_removes_outliers_before_rescaling() -> None:
    array = np.random.default_rng(3).random((1, 40, 40))
    array[0, 0, 0] = 1000.0  # one hot voxel would squash everything else under min-max
    out = PercentileClip(lower=1.0, upper=99.0)(_image(array)).array
    assert out[0, 0, 0] == pytest.approx(1.0, abs=1e-6)
    assert out.min() == pytest.approx(0.0, abs=1e-6)
    assert 0.4 < float(np.median(out)) < 0.6
    squashed = ScaleIntensity()(_image(array)).array
    assert float(np.median(squashed)) < 0.01


def test_to_channels_repeats_gray_and_converts_rgb() -> None:
    gray = np.random.default_rng(4).random((1, 6, 6))
    out = ToChannels(channels=3)(_image(gray)).array
    assert out.shape == (3, 6, 6)
    for c in range(3):
        np.testing.assert_array_equal(out[c], gray[0].astype(np.float32))

    rgb = np.stack([np.full((2, 2), 1.0), np.zeros((2, 2)), np.zeros((2, 2))])
    out = ToChannels(channels=1)(_image(rgb)).array
    assert out.shape == (1, 2, 2)
    np.testing.assert_allclose(out, 0.2125, rtol=1e-6)


def test_to_channels_rejects_an_impossible_conversion() -> None:
    with pytest.raises(InputError, match="2 channels into 3"):
        ToChannels(channels=3)(_image(np.ones((2, 4, 4))))


def test_select_channels_keeps_the_green_channel_of_a_real_fundus_photograph(shared_data) -> None:
    from medlens.data.readers import read_image

    rgb = read_image(shared_data / "drive_retina_vessels/training/images/21_training.tif")
    green = SelectChannels([1])(rgb)
    assert green.array.shape == (1, *rgb.spatial_shape)
    np.testing.assert_array_equal(green.array[0], rgb.array[1])
    reordered = SelectChannels([2, 0])(rgb).array
    np.testing.assert_array_equal(reordered, rgb.array[[2, 0]])


def test_select_channels_refuses_a_channel_the_image_lacks() -> None:
    with pytest.raises(InputError, match="test.npz#0: select_channels asks for channel 1"):
        SelectChannels([1])(_image(np.zeros((1, 4, 4))))
    with pytest.raises(ConfigError, match="channels"):
        SelectChannels([])
