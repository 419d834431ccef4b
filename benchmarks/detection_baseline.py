"""The plain torchvision Faster R-CNN script a new user would write for BCCD, without medlens.

torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` without any downloaded weights, images at
their full 640 x 480 (``min_size=480, max_size=640``), Pascal VOC boxes read with
ElementTree as they are (degenerate ones dropped, which torchvision requires), random
horizontal flips, SGD (lr 0.01, momentum 0.9, weight decay 1e-4), batch 2, on train + val
until the wall-time budget ends; the weights of the last step are used. Returns the test
detections (boxes in pixels, 0-based labels in the classes' sorted order, scores) for the
caller to score.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage

CLASSES = ["Platelets", "RBC", "WBC"]


def _read(root: Path, ids: list[str]) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    out = []
    for image_id in ids:
        image = PILImage.open(root / "JPEGImages" / f"{image_id}.jpg").convert("RGB")
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        boxes, labels = [], []
        for obj in ET.parse(root / "Annotations" / f"{image_id}.xml").getroot().iter("object"):
            b = obj.find("bndbox")
            box = [float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]  # type: ignore[union-attr,arg-type]
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
                labels.append(CLASSES.index(obj.findtext("name")) + 1)  # type: ignore[arg-type]
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        out.append((tensor, target))
    return out


def run_bccd_baseline(
    root: str | Path, minutes: float, train_ids: list[str], test_ids: list[str], seed: int = 0
) -> dict[str, Any]:
    """Train for ``minutes`` of wall time on ``train_ids``; detect ``test_ids``."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    root = Path(root)
    train = _read(root, train_ids)
    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=len(CLASSES) + 1,
        min_size=480,
        max_size=640,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    t0, steps, epochs = time.perf_counter(), 0, 0
    model.train()
    while time.perf_counter() - t0 < minutes * 60:
        order = rng.permutation(len(train))
        for start in range(0, len(order) - 1, 2):
            images, targets = [], []
            for i in order[start : start + 2]:
                image, target = train[i]
                if rng.random() < 0.5:
                    image = image.flip(-1)
                    boxes = target["boxes"].clone()
                    boxes[:, [0, 2]] = image.shape[-1] - target["boxes"][:, [2, 0]]
                    target = {**target, "boxes": boxes}
                images.append(image)
                targets.append(target)
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            optimizer.step()
            steps += 1
            if time.perf_counter() - t0 >= minutes * 60:
                break
        epochs += 1
    train_seconds = time.perf_counter() - t0
    model.eval()
    detections = []
    with torch.no_grad():
        for image, _ in _read(root, test_ids):
            out = model([image])[0]
            detections.append(
                {
                    "boxes": out["boxes"].numpy().tolist(),
                    "scores": out["scores"].numpy().tolist(),
                    "labels": (out["labels"].numpy() - 1).tolist(),
                }
            )
    return {
        "train_seconds": train_seconds,
        "steps": steps,
        "epochs": epochs,
        "detections": dict(zip(test_ids, detections, strict=True)),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--train-ids", type=Path, required=True, help="a file of image ids")
    parser.add_argument("--test-ids", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run_bccd_baseline(
        args.root,
        args.minutes,
        args.train_ids.read_text().split(),
        args.test_ids.read_text().split(),
    )
    import resource

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    args.out.write_text(json.dumps(result))
