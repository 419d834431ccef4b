"""Adapting the first convolution to another number of input channels."""

from __future__ import annotations

import torch
from torch import nn


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Convert a first-convolution kernel ``(out, C, *k)`` to ``(out, in_channels, *k)``.

    Fewer channels: each source channel's kernel is added to target channel ``c % in_channels``
    (one channel: all summed, so an RGB net sees a grey image as R = G = B). More channels: the
    kernels are repeated cyclically, each copy divided by the number of copies of its source.
    Either way an input whose channels are all equal gives exactly the source network's
    response. For 1 and for multiples of C this is timm's ``adapt_input_conv``.
    """
    source = weight.shape[1]
    if source == in_channels:
        return weight
    mixing = torch.zeros(in_channels, source, dtype=weight.dtype, device=weight.device)
    if in_channels < source:
        for s in range(source):
            mixing[s % in_channels, s] = 1.0
    else:
        copies = torch.bincount(torch.arange(in_channels) % source, minlength=source)
        for c in range(in_channels):
            mixing[c, c % source] = 1.0 / float(copies[c % source])
    return torch.einsum("ts,os...->ot...", mixing, weight)


def with_input_channels(conv: nn.Conv2d, in_channels: int, keep_weights: bool = True) -> nn.Conv2d:
    """A copy of ``conv`` reading ``in_channels`` channels.

    Args:
        conv: the network's first convolution.
        in_channels: channels the copy reads.
        keep_weights: adapt ``conv``'s kernels as ``adapt_input_channels`` does (for pretrained
            weights); otherwise the copy keeps PyTorch's fresh initialisation.
    """
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    if keep_weights:
        with torch.no_grad():
            new.weight.copy_(adapt_input_channels(conv.weight, in_channels))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return new
