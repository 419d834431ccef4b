"""PNG/JPEG/GIF/TIFF reading: channels, bit depth and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import tifffile

from medlens.data.raster import read_raster
from medlens.data.readers import read_image
from medlens.errors import InputError


def test_png_8bit_grey_keeps_values(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.array.shape == (1, 20, 30) and image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array[0], pixels)
    assert image.spacing == (1.0, 1.0)
    assert image.meta["stored_dtype"] == "uint8"


def test_png_16bit_grey_keeps_full_range(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 65536, (16, 12), dtype=np.uint16)
    pixels[0, 0] = 65535
    PIL.Image.fromarray(pixels).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(image.array[0], pixels)
    assert image.array.max() == 65535
    assert image.meta["stored_dtype"] == "uint16"


def test_rgb_png_is_channel_first(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "c.png")
    image = read_image(tmp_path / "c.png")
    assert image.array.shape == (3, 8, 9)
    for channel in range(3):
        np.testing.assert_array_equal(image.array[channel], pixels[..., channel])


def test_rgba_png_drops_alpha(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    PIL.Image.fromarray(pixels, mode="RGBA").save(tmp_path / "alpha.png")
    image = read_image(tmp_path / "alpha.png")
    assert image.array.shape == (3, 8, 9)
    np.testing.assert_array_equal(np.moveaxis(image.array, 0, -1), pixels[..., :3])


def test_jpeg_is_close_to_its_source(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    pixels = ((xx + yy) * 2).astype(np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "g.jpg", quality=95)
    image = read_image(tmp_path / "g.jpg")
    assert image.array.shape == (1, 64, 64)
    assert np.abs(image.array[0] - pixels).mean() < 2.0


def test_real_drive_fundus_tiff_is_rgb(shared_data: Path) -> None:
    image = read_image(
        shared_data / "drive_retina_vessels" / "training" / "images" / "21_training.tif"
    )
    assert image.array.shape == (3, 584, 565)
    assert image.array.min() >= 0 and image.array.max() <= 255
    # a fundus photograph is red-dominant
    assert image.array[0].mean() > image.array[2].mean()


def test_real_palette_gif_mask_collapses_to_one_channel(shared_data: Path) -> None:
    path = shared_data / "drive_retina_vessels" / "test" / "1st_manual" / "01_manual1.gif"
    assert PIL.Image.open(path).mode == "P"
    image = read_image(path)
    assert image.array.shape == (1, 584, 565)
    assert set(np.unique(image.array)) == {0.0, 255.0}
    assert 0.05 < (image.array > 127).mean() < 0.15  # vessel fraction, see PROVENANCE.md


def test_16bit_rgb_tiff_keeps_depth(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 65536, (10, 11, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", pixels, photometric="rgb")
    image = read_raster(tmp_path / "deep.tif")
    np.testing.assert_array_equal(np.moveaxis(image.array, 0, -1), pixels)


def test_multipage_grey_tiff_is_a_volume(tmp_path: Path, rng: np.random.Generator) -> None:
    stack = rng.integers(0, 4096, (5, 10, 11), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    image = read_raster(tmp_path / "stack.tif")
    assert image.array.shape == (1, 5, 10, 11) and image.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(image.array[0], stack)


def test_float_tiff_with_nan_is_refused(tmp_path: Path) -> None:
    values = np.ones((6, 6), dtype=np.float32)
    values[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", values)
    with pytest.raises(InputError, match="nan.tif.*NaN"):
        read_image(tmp_path / "nan.tif")


def test_truncated_png_names_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    PIL.Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as info:
        read_image(tmp_path / "cut.png")
    assert info.value.path == str(tmp_path / "cut.png")


def test_garbage_with_an_image_suffix_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_bytes(b"this is not a picture at all" * 10)
    with pytest.raises(InputError, match="fake.png"):
        read_image(tmp_path / "fake.png")
