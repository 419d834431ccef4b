"""ImageNet weights through the libraries' own loaders, with a clear error when offline.

timm keeps its weights in the Hugging Face hub cache
(``~/.cache/huggingface/hub/models--timm--<name>.<tag>``, moved by ``HF_HOME`` /
``HF_HUB_CACHE``); torchvision in the torch hub cache
(``~/.cache/torch/hub/checkpoints/<file>.pth``, moved by ``TORCH_HOME``). A cached file is
loaded without touching the network. When it is missing and the machine is offline
(``HF_HUB_OFFLINE=1``, or the download host cannot be reached within a few seconds) a
``ModelWeightsError`` names the expected cache path and how to fill it, instead of the
libraries' minute of retries.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from medlens.models.errors import ModelWeightsError

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 3.0
_TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def offline_mode() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, and as huggingface_hub read it at import)."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return flag or bool(constants.HF_HUB_OFFLINE)


def host_reachable(url: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout_s`` seconds.

    Behind an HTTP proxy the direct probe says nothing, so the answer is then True and the
    library's own download decides.
    """
    if urllib.request.getproxies():
        return True
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder in force now."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def create_timm_pretrained(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=True, **kwargs)``, cache first, offline-safe.

    timm adapts the first convolution to ``in_chans`` and drops the ImageNet classifier when
    ``num_classes`` differs.

    Raises:
        ModelWeightsError: the weights are not cached and cannot be downloaded.
    """
    import timm
    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    repo_id = cfg.hf_hub_id if cfg is not None else None
    if cfg is None or not repo_id:
        raise ModelWeightsError(name, "timm publishes no ImageNet weights for this model")
    cache_dir = hf_cache_dir()
    repo_folder = cache_dir / f"models--{repo_id.replace('/', '--')}"
    filenames = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _TIMM_WEIGHT_FILES
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(cached, str):
            logger.info("loading ImageNet weights for %s from %s", name, cached)
            overlay = {"file": cached}
            load = functools.partial(
                timm.create_model, name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
            )
            return _call_loader(load, Path(cached), name)
    how = (
        f"on a machine with internet run `hf download {repo_id}` (or "
        f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"`) and copy "
        f"its folder {repo_folder.name} into {cache_dir} (or point HF_HUB_CACHE at a cache "
        "that holds it)"
    )
    if offline_mode() or not host_reachable(constants.ENDPOINT):
        raise ModelWeightsError(
            repo_folder,
            f"ImageNet weights for {name} are not cached and this machine is offline; {how}",
        )
    load = functools.partial(timm.create_model, name, pretrained=True, **kwargs)
    return _call_loader(load, repo_folder, name, how)


def torchvision_checkpoint_path(url: str) -> Path:
    """Where torchvision caches the weights downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def create_torchvision_pretrained(
    name: str, builder: Callable[..., nn.Module], weights: Any
) -> nn.Module:
    """``builder(weights=weights)`` for a torchvision model function and weights enum, offline-safe.

    Raises:
        ModelWeightsError: the weights are not cached and cannot be downloaded.
    """
    path = torchvision_checkpoint_path(weights.url)
    how = (
        f"on a machine with internet download {weights.url} (or run `python -c "
        f"\"import torchvision; torchvision.models.{name}(weights='{weights.name}')\"`) "
        f"and copy the file to {path} "
        "(or set TORCH_HOME to a folder whose hub/checkpoints holds it)"
    )
    if not path.is_file() and (offline_mode() or not host_reachable(weights.url)):
        raise ModelWeightsError(
            path, f"ImageNet weights for {name} are not cached and this machine is offline; {how}"
        )
    return _call_loader(lambda: builder(weights=weights), path, name, how)


def _call_loader(load: Callable[[], nn.Module], where: Path, name: str, how: str = "") -> nn.Module:
    try:
        return load()
    # The libraries raise OSError, URLError, RuntimeError, SafetensorError, pickle errors...
    except Exception as exc:
        advice = f"; {how}" if how else "; delete it and download it again"
        raise ModelWeightsError(
            where,
            f"could not load ImageNet weights for {name} ({type(exc).__name__}: {exc}){advice}",
        ) from exc
