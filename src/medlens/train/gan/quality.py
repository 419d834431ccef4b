"""Sample quality of a GAN run: FID and a classifier two-sample test on learnt features.

Which features: Inception-v3's ImageNet weights (the usual FID) cannot be fetched on an
offline machine, and the features of a randomly initialised network barely separate good
samples from bad ones. So a small classifier (``feature_model``, ``small_cnn`` by default)
is trained on the real training images for a few epochs to tell their classes apart, and
its pooled penultimate features (64 for ``small_cnn``) are compared. They encode what
matters for the downstream task; the numbers are comparable between GANs trained on the
same images (the network is trained with a fixed seed, ``FEATURE_SEED``), not with FIDs
published on Inception features.

A reference is measured the same way: the real validation images against the real training
images. A GAN whose FID approaches that reference is as close to the training images as
other real images are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from medlens.metrics.fid import c2st_auc, frechet_distance
from medlens.models import Classifier, create_model
from medlens.models.gan import ConditionalGenerator
from medlens.run_folder.checkpoint import save_checkpoint
from medlens.train.gan.data import GanData
from medlens.train.gan.sampling import generate
from medlens.train.losses import inverse_frequency_weights

if TYPE_CHECKING:
    from medlens.train.gan.config import GanConfig

FEATURE_SEED = 0
_BATCH = 256


def train_feature_net(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    model_name: str = "small_cnn",
    epochs: int = 10,
    max_seconds: float = 60.0,
    device: torch.device | str = "cpu",
) -> Classifier:
    """A classifier trained to tell the classes of ``images`` apart, whose features then
    measure sample quality.

    Args:
        images: ``(N, C, S, S)`` in [-1, 1] (fed to the network in [0, 1]).
        labels: ``(N,)`` class indices.
        num_classes: logits width.
        model_name: a registered classifier.
        epochs: passes over the images (AdamW, lr 3e-3, class-weighted cross-entropy).
        max_seconds: wall-clock cap, s.
        device: where to train.

    Returns:
        The network, in eval mode, seeded with ``FEATURE_SEED`` (same images -> same network
        on the CPU when the cap is not reached).
    """
    torch.manual_seed(FEATURE_SEED)
    rng = torch.Generator().manual_seed(FEATURE_SEED)
    net = create_model(
        model_name,
        in_channels=int(images.shape[1]),
        num_classes=max(num_classes, 2),
        input_size=int(images.shape[-1]),
    ).to(device)
    weights = inverse_frequency_weights(labels.tolist(), max(num_classes, 2)).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    start = time.perf_counter()
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=rng).split(64):
            if len(batch) < 2:  # batch norm needs two images
                continue
            x = (images[batch].to(device) + 1.0) / 2.0
            loss = F.cross_entropy(net(x), labels[batch].to(device), weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if time.perf_counter() - start > max_seconds:
            break
    return net.eval()


def pooled_features(
    net: Classifier, images: torch.Tensor, device: torch.device | str
) -> np.ndarray:
    """``forward_head(forward_features(x), pre_logits=True)`` of images in [-1, 1]:
    float64 ``(N, num_features)``."""
    out = []
    with torch.no_grad():
        for chunk in images.split(_BATCH):
            x = (chunk.to(device) + 1.0) / 2.0
            out.append(net.forward_head(net.forward_features(x), pre_logits=True).cpu().double())
    return torch.cat(out).numpy()


def _subset(n: int, limit: int, seed: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=rng)[:limit].sort().values


def evaluate_sample_quality(
    generator: ConditionalGenerator,
    data: GanData,
    config: GanConfig,
    device: torch.device,
    feature_net_path: Path | None = None,
) -> dict[str, Any]:
    """FID and C2ST AUC of generated images against the training images, and of the real
    validation images against the training images (the reference).

    At most ``config.quality_samples`` training images are drawn (seeded); as many images
    are generated for the same labels. The reference compares equal numbers of training and
    validation images.

    Returns:
        ``fid``, ``c2st_auc``, ``fid_reference_val``, ``c2st_auc_reference_val``,
        ``n_real``, ``n_synthetic``, ``n_reference``, ``feature_model``, ``feature_dim``,
        ``feature_net_train_accuracy``.
    """
    net = train_feature_net(
        data.images, data.labels, len(data.class_names), config.feature_model,
        config.feature_epochs, config.feature_max_seconds, device,
    )  # fmt: skip
    if feature_net_path is not None:
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        save_checkpoint({"model": state, "config": dict(net.config)}, feature_net_path)
    pick = _subset(len(data.labels), config.quality_samples, config.seed)
    real = pooled_features(net, data.images[pick], device)
    fake_images = generate(generator, data.labels[pick], config.seed + 2, device)
    fake = pooled_features(net, fake_images, device)
    n_ref = min(len(pick), len(data.val_labels))
    train_ref = pooled_features(net, data.images[pick[:n_ref]], device)
    val_ref = pooled_features(
        net, data.val_images[_subset(len(data.val_labels), n_ref, config.seed)], device
    )
    with torch.no_grad():
        logits = net((data.images[pick].to(device) + 1.0) / 2.0)
    accuracy = float((logits.argmax(1).cpu() == data.labels[pick]).float().mean())
    return {
        "fid": frechet_distance(real, fake),
        "c2st_auc": c2st_auc(real, fake, folds=min(5, len(pick)), seed=config.seed),
        "fid_reference_val": frechet_distance(train_ref, val_ref) if n_ref >= 2 else None,
        "c2st_auc_reference_val": (
            c2st_auc(train_ref, val_ref, folds=min(5, n_ref), seed=config.seed)
            if n_ref >= 2
            else None
        ),
        "n_real": len(pick),
        "n_synthetic": len(fake),
        "n_reference": n_ref,
        "feature_model": config.feature_model,
        "feature_dim": int(real.shape[1]),
        "feature_net_train_accuracy": accuracy,
    }
