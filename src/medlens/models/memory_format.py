"""The memory layout a network runs fastest in on the CPU: channels-last (NHWC, NDHWC) for the
architectures measured faster that way, the default layout for everything else.

oneDNN's convolutions, their gradients and the normalisation after them often run faster
when the weights (and so the activations) are channels-last, but not always: MONAI's plain
U-Net trains 11% slower in it in 3D, VGG-16 10% slower in 2D. So the choice is per
architecture, spatial dims and use, recorded in the model registry (``ModelEntry.channels_last``:
pairs such as ``(3, "train")`` or ``(2, "inference")``) from ``benchmarks/memory_format.py``
(results in ``benchmarks/results/memory_format.json``): a use takes channels-last where it
measured at least 5% faster. On this project's 2-core AMD EPYC, for example, one training step
of the AdrenalMNIST3D recipe (small_cnn 8-16-32-64, 32 volumes of 64^3) takes 1.84 s in the
default layout and 1.33 s channels-last; of the PneumoniaMNIST recipe (ResNet-18, 128 images
of 64 px) 1.24 s and 1.02 s.

The choice is fixed per architecture, not timed at run time, so that a seeded run gives the
same numbers every time. GPU runs are left to cuDNN.

The layout changes where the numbers are stored, not what they are: the outputs agree with the
default layout's to floating-point rounding, and checkpoints load into either layout.
"""

from __future__ import annotations

import torch
from torch import nn

from medlens.models.registry import MODELS, LayoutUse


def preferred_memory_format(
    name: str, spatial_dims: int, device: torch.device, use: LayoutUse
) -> torch.memory_format:
    """Channels-last (``torch.channels_last`` in 2D, ``torch.channels_last_3d`` in 3D) on
    the CPU where ``name``'s registry entry has ``(spatial_dims, use)`` in its
    ``channels_last``; else ``torch.contiguous_format``.

    Raises:
        UnknownNameError: ``name`` is not a registered model.
    """
    if device.type != "cpu" or (spatial_dims, use) not in MODELS.get(name).channels_last:
        return torch.contiguous_format
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last


def to_preferred_memory_format(model: nn.Module, device: torch.device, use: LayoutUse) -> nn.Module:
    """``model`` (in place, and returned) in the layout ``preferred_memory_format`` names for
    the architecture its ``config`` records (``create_model`` sets it).

    Only the convolution kernels (4-D, 5-D weights) change layout; inputs need not, as each
    convolution follows its weight's layout. A network without a recorded name is left as is.
    """
    config = getattr(model, "config", None) or {}
    if "name" not in config:
        return model
    fmt = preferred_memory_format(config["name"], int(config.get("spatial_dims", 2)), device, use)
    if fmt is not torch.contiguous_format:
        model.to(memory_format=fmt)
    return model
