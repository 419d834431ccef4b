"""The shared layers: min+max pooling, the input-size guard, first-convolution adaptation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medlens.models import create_model
from medlens.models.channels import adapt_input_channels, with_input_channels
from medlens.models.layers import MinMaxPool2d, MinSizeUpsample


def test_min_max_pool_concatenates_window_maxima_and_minima():
    x = torch.tensor([[[[1.0, -2.0, 0.0, 5.0], [3.0, 4.0, -1.0, 2.0]]]])  # (1, 1, 2, 4)
    out = MinMaxPool2d(2)(x)
    assert out.shape == (1, 2, 1, 2)
    assert out[0, 0, 0].tolist() == [4.0, 5.0]  # max of each 2x2 window
    assert out[0, 1, 0].tolist() == [-2.0, -1.0]  # min of each 2x2 window


def test_lenet5_pools_both_polarities():
    model = create_model("lenet5", in_channels=1)
    assert isinstance(model.c1[-1], MinMaxPool2d) and isinstance(model.c3[-1], MinMaxPool2d)
    assert model.c3[0].in_channels == 2 * model.c1[0].out_channels
    with torch.no_grad():  # a 20 px input is upsampled to the 28 px LeNet needs
        features = model.forward_features(torch.zeros(2, 1, 20, 20))
    assert features.shape[1:] == (120, 1, 1)


def test_min_size_upsample_scales_small_inputs_keeping_aspect_ratio():
    guard = MinSizeUpsample(32)
    assert guard(torch.zeros(1, 1, 28, 56)).shape == (1, 1, 32, 64)
    assert guard(torch.zeros(1, 2, 20, 20, 20)).shape == (1, 2, 32, 32, 32)
    big = torch.zeros(1, 1, 40, 33)
    assert guard(big) is big
    ramp = torch.linspace(0, 1, 28).expand(1, 1, 28, 28)
    up = guard(ramp)
    assert up.min() >= 0 and up.max() <= 1 and torch.all(up[..., 1:] >= up[..., :-1])


def test_adapted_kernels_respond_to_a_grey_image_as_the_original_does():
    torch.manual_seed(0)
    rgb = torch.randn(8, 3, 3, 3)
    grey = torch.randn(1, 1, 10, 10)
    reference = F.conv2d(grey.expand(-1, 3, -1, -1), rgb)
    for channels in (1, 2, 4, 7):
        adapted = adapt_input_channels(rgb, channels)
        assert adapted.shape == (8, channels, 3, 3)
        torch.testing.assert_close(F.conv2d(grey.expand(-1, channels, -1, -1), adapted), reference)


def test_with_input_channels_keeps_the_convolution_geometry():
    conv = torch.nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
    grey = with_input_channels(conv, 1)
    assert grey.in_channels == 1 and grey.kernel_size == (7, 7)
    assert grey.stride == (2, 2) and grey.padding == (3, 3)
    torch.testing.assert_close(grey.weight, conv.weight.sum(dim=1, keepdim=True))
    assert with_input_channels(conv, 3) is conv
