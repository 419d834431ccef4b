"""The plain DRIVE vessel baseline a user would write by hand with MONAI, without medlens.

Green channel, CLAHE (scikit-image), MONAI's UNet (16-256 channels, 2 residual units),
96-px patches drawn uniformly at random with random flips, BCE + Dice on the sigmoid output,
Adam at 1e-3, batch 16; MONAI's sliding-window inference (96 px, overlap 0.25) and a 0.5
threshold. The weights of the last step are used (no validation split: the user trains on all
20 training images until the budget ends). Dice and pixel AUC are measured inside the FOV masks
of the 20 official test images.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from skimage.exposure import equalize_adapthist
from sklearn.metrics import roc_auc_score

PATCH = 96


def _read(folder: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for image_path in sorted((folder / "images").glob("*.tif")):
        number = image_path.name.split("_")[0]
        rgb = np.asarray(PILImage.open(image_path).convert("RGB"), dtype=np.float32) / 255.0
        green = equalize_adapthist(rgb[..., 1]).astype(np.float32)
        vessels = np.asarray(PILImage.open(folder / "1st_manual" / f"{number}_manual1.gif")) > 127
        fov = np.asarray(PILImage.open(next((folder / "mask").glob(f"{number}_*mask.gif")))) > 127
        out.append((green, vessels.astype(np.float32), fov))
    return out


def run_drive_baseline(data_dir: str | Path, minutes: float, seed: int = 0) -> dict:
    """Train for ``minutes`` of wall time on the training images; score the test images."""
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    train, test = _read(data_dir / "training"), _read(data_dir / "test")
    model = UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(16, 32, 64, 128, 256),
        strides=(2, 2, 2, 2),
        num_res_units=2,
    )
    loss_fn = DiceCELoss(sigmoid=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0, steps = time.perf_counter(), 0
    model.train()
    while time.perf_counter() - t0 < minutes * 60:
        xs, ys = [], []
        for _ in range(16):
            image, vessels, _ = train[rng.integers(len(train))]
            r = rng.integers(0, image.shape[0] - PATCH + 1)
            c = rng.integers(0, image.shape[1] - PATCH + 1)
            x, y = image[r : r + PATCH, c : c + PATCH], vessels[r : r + PATCH, c : c + PATCH]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            if rng.random() < 0.5:
                x, y = x[::-1], y[::-1]
            xs.append(x.copy())
            ys.append(y.copy())
        x = torch.from_numpy(np.stack(xs))[:, None]
        y = torch.from_numpy(np.stack(ys))[:, None]
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    train_minutes = (time.perf_counter() - t0) / 60
    model.eval()
    dices, aucs = [], []
    with torch.no_grad():
        for image, vessels, fov in test:
            x = torch.from_numpy(image)[None, None]
            prob = torch.sigmoid(sliding_window_inference(x, (PATCH, PATCH), 8, model))[0, 0]
            prob = prob.numpy()
            ref = vessels[fov] > 0.5
            pred = prob[fov] > 0.5
            dices.append(2 * np.sum(pred & ref) / (np.sum(pred) + np.sum(ref)))
            aucs.append(roc_auc_score(ref, prob[fov]))
    return {
        "test_dice": float(np.mean(dices)),
        "test_auc": float(np.mean(aucs)),
        "train_minutes": train_minutes,
        "steps": steps,
        "per_image_dice": [float(d) for d in dices],
    }
