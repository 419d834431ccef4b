"""First-order features against scipy.stats / numpy, and the discretisation they use."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from medlens.data.image import Image
from medlens.errors import ConfigError
from medlens.features import handcrafted_features
from medlens.features.quantize import quantize
from medlens.features.roi import region_of_interest


def _first_order(image: Image, mask: np.ndarray | None = None, **kw) -> dict[str, float]:
    return handcrafted_features(image, mask, families=("firstorder",), **kw)


@pytest.mark.parametrize("shape", [(40, 30), (12, 14, 10)])
def test_statistics_match_scipy_inside_the_mask(rng: np.random.Generator, shape: tuple) -> None:
    array = rng.gamma(2.0, 30.0, size=shape) - 40.0
    mask = rng.random(shape) < 0.4
    spacing = (0.7, 1.3, 2.0)[: len(shape)]
    f = _first_order(Image(array[None].astype(np.float64), spacing), mask)
    x = array[mask]
    assert f["firstorder_mean"] == pytest.approx(np.mean(x))
    assert f["firstorder_standard_deviation"] == pytest.approx(np.std(x))
    assert f["firstorder_variance"] == pytest.approx(np.var(x))
    assert f["firstorder_skewness"] == pytest.approx(stats.skew(x))
    assert f["firstorder_kurtosis"] == pytest.approx(stats.kurtosis(x, fisher=True))
    assert f["firstorder_minimum"] == x.min()
    assert f["firstorder_maximum"] == x.max()
    assert f["firstorder_range"] == pytest.approx(np.ptp(x))
    assert f["firstorder_median"] == pytest.approx(np.median(x))
    assert f["firstorder_percentile_10"] == pytest.approx(np.percentile(x, 10))
    assert f["firstorder_percentile_90"] == pytest.approx(np.percentile(x, 90))
    assert f["firstorder_interquartile_range"] == pytest.approx(stats.iqr(x))
    assert f["firstorder_mean_absolute_deviation"] == pytest.approx(np.mean(np.abs(x - x.mean())))
    assert f["firstorder_energy"] == pytest.approx(np.sum(x**2))
    assert f["firstorder_total_energy"] == pytest.approx(np.sum(x**2) * np.prod(spacing))
    assert f["firstorder_root_mean_squared"] == pytest.approx(np.sqrt(np.mean(x**2)))
    counts, _ = np.histogram(x, bins=32, range=(x.min(), x.max()))
    assert f["firstorder_entropy"] == pytest.approx(stats.entropy(counts, base=2))
    assert f["firstorder_uniformity"] == pytest.approx(np.sum((counts / x.size) ** 2))


def test_flat_roi_has_zero_spread_and_shape_moments() -> None:
    f = _first_order(Image(np.full((1, 6, 6), 7.0), (1.0, 1.0)))
    assert f["firstorder_standard_deviation"] == 0.0
    assert f["firstorder_skewness"] == 0.0
    assert f["firstorder_kurtosis"] == 0.0
    assert f["firstorder_entropy"] == 0.0
    assert f["firstorder_uniformity"] == 1.0


def test_fixed_bin_count_matches_numpy_histogram_bins(rng: np.random.Generator) -> None:
    array = rng.normal(size=(1, 20, 20))
    roi = region_of_interest(Image(array, (1.0, 1.0)))
    levels, n_levels = quantize(roi, bins=8)
    edges = np.histogram_bin_edges(array, bins=8)
    expected = np.clip(np.digitize(array[0], edges), 1, 8)  # max lands in the last bin
    assert n_levels == 8
    np.testing.assert_array_equal(levels, expected)


def test_fixed_bin_width_puts_edges_at_multiples_of_the_width() -> None:
    hu = np.array([[[-30.0, -25.0, -1.0, 0.0, 24.9, 25.0, 60.0]]])
    roi = region_of_interest(Image(hu, (1.0, 1.0)))
    levels, n_levels = quantize(roi, bin_width=25.0)
    # bins [-50,-25) [-25,0) [0,25) [25,50) [50,75) -> levels 1..5
    np.testing.assert_array_equal(levels[0], [1, 2, 2, 3, 3, 4, 5])
    assert n_levels == 5


@pytest.mark.parametrize(
    "kw", [{"bins": 1}, {"bins": 2.5}, {"bin_width": 0.0}, {"bin_width": 1e-6}]
)
def test_bad_discretisation_is_a_config_error(kw: dict) -> None:
    image = Image(np.arange(100.0).reshape(1, 10, 10), (1.0, 1.0))
    with pytest.raises(ConfigError):
        _first_order(image, **kw)
