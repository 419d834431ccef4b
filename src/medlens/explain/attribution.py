"""Input attributions from Captum: saliency, SmoothGrad, integrated gradients, occlusion.

Gradient maps (saliency, SmoothGrad) keep the magnitude (evidence for or against the
class, as their papers draw them); integrated gradients and occlusion keep the positive
part of the channel sum (evidence for the class). Captum works on any number of spatial
axes, so every method serves 2D images and 3D volumes alike.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency

from medlens.errors import ConfigError
from medlens.explain.registry import channel_relevance, register_explainer


def reference_image(x: torch.Tensor, baseline: str) -> torch.Tensor:
    """The reference an attribution compares ``x`` with, same shape as ``x``.

    Args:
        baseline: ``"mean"`` (each image's per-channel mean intensity: the image with its
            structure removed, a value the model saw in training) or ``"zeros"`` (black
            after preprocessing, the papers' choice for natural images; a black patch in a
            radiograph is itself a strong, unseen feature).
    """
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.flatten(2).mean(dim=2).reshape(x.shape[:2] + (1,) * (x.ndim - 2)).expand_as(x)
    raise ConfigError("explain.baseline", f"must be 'zeros' or 'mean', got {baseline!r}")


@register_explainer("saliency")
def saliency(
    model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor, sign: str = "absolute"
) -> np.ndarray:
    """Vanilla gradient (Simonyan et al. 2014): |d logit / d input|, largest over channels."""
    attribution = Saliency(model).attribute(x, target=targets, abs=False)
    return channel_relevance(attribution, sign)


@register_explainer("smoothgrad")
def smoothgrad(
    model: torch.nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    n_samples: int = 16,
    noise_level: float = 0.15,
    seed: int = 0,
    sign: str = "absolute",
) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies of the input.

    Args:
        n_samples: noisy copies per image.
        noise_level: the noise standard deviation as a fraction of the batch's intensity
            range (max - min); the paper recommends 0.10-0.20.
        seed: seeds the noise (the global torch generator is left as it was).
        sign: see ``channel_relevance``, applied to the averaged gradient (as the paper
            draws it: the magnitude of the mean, not the mean of the magnitudes).
    """
    if n_samples < 1 or noise_level < 0:
        raise ConfigError("explain.n_samples", "needs n_samples >= 1 and noise_level >= 0")
    stdev = float(noise_level * (x.max() - x.min()).item())
    devices = [x.device.index or 0] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        attribution = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=n_samples,
            nt_samples_batch_size=min(n_samples, 8),
            stdevs=stdev,
            target=targets,
            abs=False,
        )
    return channel_relevance(attribution, sign)


@register_explainer("integrated-gradients")
def integrated_gradients(
    model: torch.nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    n_steps: int = 32,
    baseline: str = "mean",
    sign: str = "positive",
) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017) along the line from a baseline image.

    Args:
        n_steps: points of the Gauss-Legendre path integral.
        baseline: the reference image, see ``reference_image``.
        sign: see ``channel_relevance``.
    """
    attribution = IntegratedGradients(model).attribute(
        x,
        baselines=reference_image(x, baseline),
        target=targets,
        n_steps=n_steps,
        internal_batch_size=max(n_steps, 8),
    )
    return channel_relevance(attribution, sign)


@register_explainer("occlusion")
def occlusion(
    model: torch.nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    window: int | None = None,
    stride: int | None = None,
    baseline: str = "mean",
    sign: str = "positive",
) -> np.ndarray:
    """Occlusion (Zeiler & Fergus 2014): the drop of the target logit when a patch is hidden.

    Args:
        window: side of the hidden cube, in pixels (voxels); default a seventh of the
            shortest side.
        stride: step between windows, in pixels (voxels); default half the window in 2D
            (169 forward passes for a 28 px image) and the window itself in 3D (343 passes
            for a 28^3 volume instead of 2197 with half-window steps).
        baseline: what hides the patch, see ``reference_image``.
        sign: see ``channel_relevance``.
    """
    spatial = tuple(x.shape[2:])
    window = window or max(1, round(min(spatial) / 7))
    stride = stride or (max(1, window // 2) if len(spatial) == 2 else window)
    if not 1 <= window <= min(spatial) or stride < 1:
        raise ConfigError(
            "explain.window",
            f"window must be 1..{min(spatial)} px and stride >= 1, got {window} and {stride}",
        )
    channels = int(x.shape[1])
    attribution = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(channels,) + (window,) * len(spatial),
        strides=(channels,) + (stride,) * len(spatial),
        baselines=reference_image(x, baseline),
        target=targets,
        perturbations_per_eval=16,
    )
    return channel_relevance(attribution, sign)
