"""The plain baseline a user would write by hand, without medlens.

2D: torchvision ResNet-18 with a CIFAR-style stem (3x3 stride-1 conv, no max-pool),
class-weighted cross-entropy, random flips, Adam. 3D: MONAI's ResNet-18 (spatial_dims=3).
The best epoch (validation AUC) and the threshold (Youden J on validation) are chosen on
validation; the test split is scored once at the end. Trains until the time budget is spent.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn


def _model(spatial_dims: int) -> nn.Module:
    if spatial_dims == 2:
        from torchvision.models import resnet18

        model = resnet18(num_classes=2)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        return model
    from monai.networks.nets import resnet18 as resnet18_3d

    return resnet18_3d(spatial_dims=3, n_input_channels=1, num_classes=2)


@torch.no_grad()
def _probs(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(x[i : i + batch]), 1)[:, 1] for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def run_baseline(npz_path: str, minutes: float, seed: int = 0, max_epochs: int = 100) -> dict:
    """Train the baseline for ``minutes`` of wall time; return test AUC/ACC and timings."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    data = np.load(npz_path)
    x = {
        s: torch.from_numpy(data[f"{s}_images"].astype(np.float32) / 255.0).unsqueeze(1)
        for s in ("train", "val", "test")
    }
    y = {
        s: torch.from_numpy(data[f"{s}_labels"].reshape(-1).astype(np.int64))
        for s in ("train", "val", "test")
    }
    spatial_dims = x["train"].ndim - 2
    model = _model(spatial_dims)
    counts = torch.bincount(y["train"], minlength=2).float()
    loss_fn = nn.CrossEntropyLoss(weight=counts.sum() / (2 * counts))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = 128 if spatial_dims == 2 else 32
    flip_dims = [3] if spatial_dims == 2 else [2, 3, 4]
    best_auc, best_state, best_epoch, epochs = -1.0, None, 0, 0
    t0 = time.perf_counter()
    epoch_time = 0.0
    while epochs < max_epochs and (time.perf_counter() - t0) + epoch_time < minutes * 60:
        te = time.perf_counter()
        model.train()
        order = torch.randperm(len(y["train"]))
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            xb = x["train"][idx].clone()
            for d in flip_dims:
                mask = torch.rand(len(idx)) < 0.5
                xb[mask] = torch.flip(xb[mask], dims=[d])
            loss = loss_fn(model(xb), y["train"][idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epochs += 1
        auc = roc_auc_score(y["val"].numpy(), _probs(model, x["val"]))
        if auc > best_auc:
            best_auc, best_state, best_epoch = auc, copy.deepcopy(model.state_dict()), epochs
        epoch_time = time.perf_counter() - te
    train_seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    p_val = _probs(model, x["val"])
    fpr, tpr, thr = roc_curve(y["val"].numpy(), p_val)
    threshold = float(np.clip(thr[np.argmax(tpr - fpr)], 0.0, 1.0))
    p_test = _probs(model, x["test"])
    y_test = y["test"].numpy()
    return {
        "test_auc": float(roc_auc_score(y_test, p_test)),
        "test_acc_at_0.5": float(np.mean((p_test >= 0.5) == y_test)),
        "test_acc_at_val_threshold": float(np.mean((p_test >= threshold) == y_test)),
        "val_threshold": threshold,
        "val_auc": float(best_auc),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "train_minutes": train_seconds / 60,
    }
