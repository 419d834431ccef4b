"""Sliding-window inference: equal to a whole-image forward where the model allows it."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from medlens.errors import ConfigError, InputError
from medlens.inference.sliding_window import sliding_window_predict
from medlens.models import create_model


def _conv(dims: int, kernel: int, seed: int = 0, in_channels: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(in_channels, 3, kernel, padding=kernel // 2)
    return conv.eval()


def _full(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(image.unsqueeze(0)), dim=1)


def _image(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize(
    ("shape", "roi"),
    [((2, 37, 45), (16, 16)), ((2, 11, 20, 9), (8, 8, 8)), ((2, 5, 7), (16, 16))],
    ids=["2d-odd", "3d-odd", "smaller-than-roi"],
)
def test_a_pointwise_model_gives_the_whole_image_forward_everywhere(shape, roi, mode):
    # a 1x1 convolution sees one voxel: any tiling and any blending must reproduce it exactly
    model = _conv(len(roi), kernel=1)
    image = _image(*shape)
    probs = sliding_window_predict(model, image, roi, overlap=0.5, mode=mode)
    assert probs.shape == (1, 3, *shape[1:])
    torch.testing.assert_close(probs, _full(model, image), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("shape", "roi"), [((2, 13, 11), (16, 16)), ((2, 7, 9, 5), (8, 16, 8))])
def test_an_image_inside_one_zero_padded_window_matches_a_3x3_convolution_exactly(shape, roi):
    # zero padding up to the window is what the convolution's own zero padding sees
    model = _conv(len(roi), kernel=3)
    image = _image(*shape)
    probs = sliding_window_predict(model, image, roi)
    torch.testing.assert_close(probs, _full(model, image), atol=1e-6, rtol=1e-5)


def test_a_3x3_convolution_is_exact_away_from_the_inner_window_edges():
    # 40 px, 16 px windows, overlap 0.5: windows start at 0, 8, 16, 24. A 3x3 convolution is
    # wrong only on a window's edge rows/columns inside the image, where the window's zero
    # padding replaces the true neighbour.
    size, roi, stride = 40, 16, 8
    starts = list(range(0, size - roi + 1, stride))
    inner_edges = {s for s in starts if s > 0} | {s + roi - 1 for s in starts if s + roi < size}
    exact = torch.tensor([i not in inner_edges for i in range(size)])
    model = _conv(2, kernel=3)
    image = _image(2, size, size)
    probs = sliding_window_predict(model, image, (roi, roi), overlap=0.5)
    full = _full(model, image)
    inside = exact[:, None] & exact[None, :]
    torch.testing.assert_close(probs[..., inside], full[..., inside], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(probs, full, atol=1e-4), "window edges do differ: the test bites"


def test_flip_tta_changes_nothing_for_a_flip_equivariant_model():
    # a 3x3 kernel symmetric under both flips commutes with flipping; 32 px in 16 px windows
    # at overlap 0.5 is a symmetric tiling
    model = _conv(2, kernel=3, in_channels=1)
    with torch.no_grad():
        weight = model.weight
        model.weight.copy_((weight + weight.flip(2) + weight.flip(3) + weight.flip(2, 3)) / 4)
    image = _image(1, 32, 32)
    plain = sliding_window_predict(model, image, (16, 16))
    tta = sliding_window_predict(model, image, (16, 16), tta_flip=True)
    torch.testing.assert_close(tta, plain, atol=1e-6, rtol=1e-5)


def test_flip_tta_averages_the_unflipped_predictions_of_every_flip():
    model = _conv(2, kernel=3, seed=3)
    image = _image(2, 16, 16)
    tta = sliding_window_predict(model, image, (16, 16), tta_flip=True)
    axes_sets = [a for k in range(3) for a in itertools.combinations((2, 3), k)]
    batch = image.unsqueeze(0)
    with torch.no_grad():
        expected = sum(
            torch.softmax(model(batch.flip(a)), dim=1).flip(a) if a else _full(model, image)
            for a in axes_sets
        ) / len(axes_sets)
    torch.testing.assert_close(tta, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(tta, _full(model, image), atol=1e-3), "the model is not equivariant"


def test_a_unet_predicts_probabilities_of_an_odd_sized_batch_and_keeps_its_training_mode():
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=2, spatial_dims=2).train()
    batch = _image(2, 1, 37, 45)
    probs = sliding_window_predict(model, batch, 32, sw_batch_size=2)
    assert probs.shape == (2, 2, 37, 45) and probs.dtype == torch.float32
    assert not probs.requires_grad
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, 37, 45))
    assert model.training, "the caller's mode is restored"
    # each case of a batch is predicted on its own
    one = sliding_window_predict(model, batch[1], 32)
    torch.testing.assert_close(probs[1:], one, atol=1e-6, rtol=1e-5)


def test_bad_patch_sizes_and_options_are_config_errors():
    model = create_model("unet", in_channels=1, num_classes=2, spatial_dims=2)
    image = _image(1, 40, 40)
    with pytest.raises(ConfigError, match="multiple of 8 voxels"):
        sliding_window_predict(model, image, (20, 24))
    with pytest.raises(ConfigError, match="2D"):
        sliding_window_predict(model, image, (16, 16, 16))
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        sliding_window_predict(model, image, 16, overlap=1.0)
    with pytest.raises(ConfigError, match="gaussian"):
        sliding_window_predict(model, image, 16, mode="median")
    with pytest.raises(InputError, match="reads 1 channel"):
        sliding_window_predict(model, _image(3, 40, 40), 16)
    with pytest.raises(InputError, match="spatial axes"):
        sliding_window_predict(model, _image(40, 40), 16)


@pytest.mark.parametrize(
    ("shape", "roi", "overlap"),
    [((1, 45, 61), (32, 32), 0.5), ((1, 21, 35, 18), (16, 16, 16), 0.25)],
)
def test_the_slab_stitching_equals_monai_sliding_window_inference(shape, roi, overlap):
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=3, spatial_dims=len(roi)).eval()
    image = _image(*shape)
    ours = sliding_window_predict(model, image, roi, overlap=overlap, sw_batch_size=3)
    with torch.no_grad():
        monai = sliding_window_inference(
            image.unsqueeze(0), roi, 3, lambda x: torch.softmax(model(x), dim=1),
            overlap=overlap, mode="gaussian",
        )  # fmt: skip
    torch.testing.assert_close(ours, monai, atol=1e-5, rtol=1e-4)


def test_a_float16_result_holds_the_same_decisions():
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=2, spatial_dims=3).eval()
    image = _image(1, 40, 24, 24)
    full = sliding_window_predict(model, image, 16)
    half = sliding_window_predict(model, image, 16, out_dtype=torch.float16)
    assert half.dtype == torch.float16
    assert (half.float() - full).abs().max() < 1e-3
    same = (half.argmax(1) == full.argmax(1)).float().mean()
    assert same > 0.999
