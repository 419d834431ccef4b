"""Class activation maps from pytorch-grad-cam: Grad-CAM and Grad-CAM++, 2D and 3D.

pytorch-grad-cam 1.5.x handles 5-D activations itself (channel weights averaged over three
axes, the map resized with ``scipy.ndimage.zoom``); the layer is the classifier's
``target_layer``, the module whose output is ``forward_features``. Where that map has a
single position for the given input size (VGG, AlexNet, GoogLeNet, Inception-v3, LeNet at
28 px; 3D ResNets at 28^3 with the standard stem), a CAM would be constant, so the output of
the last stage that still has more than one position is used instead (and logged).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from medlens.explain.registry import register_explainer

log = logging.getLogger(__name__)


def _cam(
    method: type[BaseCAM], model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    layer = cam_layer(model, x)
    cam = method(model=model, target_layers=[layer])
    try:  # not ``with``: the library's __exit__ prints and swallows an IndexError
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)  # the library's backward() filled the .grad
    return _on_input_grid(np.asarray(maps, dtype=np.float32), tuple(x.shape[2:]))


def cam_layer(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """``model.target_layer``, or the last stage output with more than one position for ``x``.

    Raises:
        TypeError: the model has no ``target_layer``.
    """
    target = getattr(model, "target_layer", None)
    if not isinstance(target, torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no target_layer for a class activation map")
    stages: list[torch.nn.Module] = getattr(model, "stages", list)()
    candidates = [_last_module(s) for s in stages] + [target]
    positions: dict[int, int] = {}  # id(module) -> spatial positions of its first output

    def record(module: torch.nn.Module, _: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.ndim == x.ndim:
            positions.setdefault(id(module), int(np.prod(out.shape[2:])))

    handles = [m.register_forward_hook(record) for m in candidates]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    if positions.get(id(target), 0) > 1:
        return target
    called = [m for m in candidates if positions.get(id(m), 0) > 1]
    if not called:
        return target  # nothing better: the CAM is constant, i.e. all zeros after scaling
    names = {id(m): name for name, m in model.named_modules()}
    log.info(
        "the target layer's map has one position for input %s; Grad-CAM uses %s (%d positions)",
        tuple(x.shape[2:]),
        names.get(id(called[-1]), type(called[-1]).__name__),
        positions[id(called[-1])],
    )
    return called[-1]


def _last_module(stage: torch.nn.Module) -> torch.nn.Module:
    """The module whose output is a stage's output: a stage may be a list or slice (a view)."""
    while isinstance(stage, torch.nn.Sequential | torch.nn.ModuleList) and len(stage):
        stage = stage[-1]
    return stage


def _on_input_grid(maps: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """``zoom`` rounds the output size; make sure the map lies on the input's grid."""
    if maps.shape[1:] == spatial:
        return maps
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    resized = F.interpolate(torch.from_numpy(maps)[:, None], size=spatial, mode=mode)
    return resized[:, 0].numpy()


@register_explainer("gradcam")
def gradcam(model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): feature maps weighted by their mean gradient, ReLU."""
    return _cam(GradCAM, model, x, targets)


@register_explainer("gradcam++")
def gradcam_plus_plus(model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Grad-CAM++ (Chattopadhyay et al. 2018): positive gradients weighted per location."""
    return _cam(GradCAMPlusPlus, model, x, targets)
