"""Fine-tuning strategies: which parameters train, at which learning rate."""

from __future__ import annotations

from typing import Any

from torch import nn

from medlens.errors import ConfigError
from medlens.models.classifier import Classifier

STRATEGIES = ("full", "linear_probe", "freeze", "discriminative")


def configure_finetuning(
    model: Classifier,
    strategy: str = "full",
    freeze_stages: int = 0,
    lr: float = 1e-3,
    backbone_lr_scale: float = 0.1,
) -> list[dict[str, Any]]:
    """Freeze what the strategy freezes and return the optimizer's parameter groups.

    Strategies:
        ``full``: everything trains at ``lr``.
        ``linear_probe``: only the last linear layer (``model.head``) trains.
        ``freeze``: the first ``freeze_stages`` of ``model.stages()`` are frozen, the rest
        trains at ``lr``.
        ``discriminative``: the backbone trains at ``lr * backbone_lr_scale``, the head at
        ``lr``; the first ``freeze_stages`` stages may also be frozen.

    Frozen parameters get ``requires_grad=False``; call ``set_frozen_bn_eval(model)`` after
    every ``model.train()`` so that frozen BatchNorms keep their running statistics.

    Returns:
        Parameter groups (``{"name", "params", "lr"}``) for ``torch.optim``; frozen parameters
        are in none of them.

    Raises:
        ConfigError: an unknown strategy, or ``freeze_stages`` the strategy cannot use.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(
            "model.strategy", f"unknown strategy {strategy!r}; available: {', '.join(STRATEGIES)}"
        )
    stages = model.stages()
    if strategy in ("full", "linear_probe") and freeze_stages:
        raise ConfigError(
            "model.freeze_stages",
            f"is not used by strategy {strategy!r}; use 'freeze' or 'discriminative'",
        )
    lowest = 1 if strategy == "freeze" else 0
    if not lowest <= freeze_stages <= len(stages):
        name = model.config.get("name", type(model).__name__)
        raise ConfigError(
            "model.freeze_stages",
            f"must be between {lowest} and {len(stages)} (the stages of {name}), "
            f"got {freeze_stages}",
        )
    for param in model.parameters():
        param.requires_grad_(True)
    head_ids = {id(p) for p in model.head.parameters()}
    if strategy == "linear_probe":
        for param in model.parameters():
            param.requires_grad_(id(param) in head_ids)
        return [{"name": "head", "params": list(model.head.parameters()), "lr": lr}]
    for frozen in stages[:freeze_stages]:
        for param in frozen.parameters():
            param.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if strategy != "discriminative":
        return [{"name": "model", "params": trainable, "lr": lr}]
    backbone = [p for p in trainable if id(p) not in head_ids]
    head = [p for p in trainable if id(p) in head_ids]
    groups = [{"name": "backbone", "params": backbone, "lr": lr * backbone_lr_scale}]
    return [g for g in groups if g["params"]] + [{"name": "head", "params": head, "lr": lr}]


def set_frozen_bn_eval(model: nn.Module) -> None:
    """Put every BatchNorm whose parameters are all frozen in eval mode.

    A frozen BatchNorm left in train mode would still update its running mean and variance
    (and normalise with batch statistics), drifting away from the weights it was frozen with.
    Call after ``model.train()``, e.g. at the start of each epoch.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
