"""Every registered detector trains one step and predicts on tiny images; weights come from a
medlens classifier, a medlens detector, or COCO (offline: one clear error)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from medlens.errors import ConfigError, InputError
from medlens.models import ModelWeightsError, create_model, model_names
from medlens.models.detection import create_detector, detector_from_config
from medlens.models.detection.coco_weights import torchvision_coco_model, transfer_state

SMALL = {
    "fpn_channels": 32,
    "box_head_size": 32,
    "proposals_train": 50,
    "proposals_test": 20,
    "roi_batch_size": 16,
    "anchor_sizes": [8, 16, 32, 64, 128],
}


def _small(name: str, **kwargs) -> torch.nn.Module:
    backbone = None if "mobilenet" in name else "resnet18"
    return create_detector(name, num_classes=2, backbone=backbone, **{**SMALL, **kwargs})


def _batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    masks = torch.zeros(2, 48, 64, dtype=torch.uint8)
    masks[0, 4:20, 6:30] = 1
    masks[1, 30:44, 40:60] = 1
    images = [torch.rand(3, 48, 64), torch.rand(3, 40, 56)]
    targets = [
        {
            "boxes": torch.tensor([[6.0, 4, 30, 20], [40, 30, 60, 44]]),
            "labels": torch.tensor([1, 2]),
            "masks": masks,
        },
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "masks": torch.zeros(0, 40, 56, dtype=torch.uint8),
        },
    ]
    return images, targets


@pytest.mark.parametrize("name", model_names("detection"))
def test_one_training_step_and_prediction(name: str) -> None:
    torch.manual_seed(0)
    model = _small(name)
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in model.backbone.body.parameters())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and set(out[0]) >= {"boxes", "scores", "labels"}
    assert ("masks" in out[0]) == model.predicts_masks
    if len(out[0]["boxes"]):
        assert out[0]["boxes"][:, 2].max() <= 64 and out[0]["labels"].min() >= 1  # the input's grid


def test_the_config_rebuilds_the_same_detector() -> None:
    model = _small("faster_rcnn", pretrained=None)
    rebuilt = detector_from_config(model.config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())
    assert model.net.transform.image_mean == rebuilt.net.transform.image_mean == [0.0, 0.0, 0.0]


def test_a_classifier_checkpoint_initialises_the_backbone(tmp_path: Path) -> None:
    torch.manual_seed(1)
    classifier = create_model("resnet18", in_channels=3, num_classes=4, cifar_stem=False)
    path = tmp_path / "model.pt"
    torch.save({"model": classifier.state_dict(), "model_config": classifier.config}, path)
    detector = create_detector(
        "faster_rcnn", num_classes=2, backbone="resnet18", init=path, **SMALL
    )
    torch.testing.assert_close(detector.backbone.body.conv1.weight, classifier.net.conv1.weight)
    torch.testing.assert_close(
        detector.backbone.body.layer4[1].conv2.weight, classifier.net.layer4[1].conv2.weight
    )
    assert detector.init_report["path"] == str(path)
    whole = tmp_path / "detector.pt"
    torch.save({"model": detector.state_dict(), "model_config": detector.config}, whole)
    again = create_detector("faster_rcnn", num_classes=2, backbone="resnet18", init=whole, **SMALL)
    for key, value in detector.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
    other = tmp_path / "unet.pt"
    unet = create_model("unet", num_classes=2)
    torch.save({"model": unet.state_dict(), "model_config": unet.config}, other)
    with pytest.raises(InputError, match="another architecture"):
        create_detector("faster_rcnn", num_classes=2, backbone="resnet18", init=other, **SMALL)


def test_torchvision_coco_tensors_fit_the_medlens_pyramid() -> None:
    """torchvision's ResNet-50 FPN detectors (random weights here: the same tensor names as
    their COCO checkpoints) load into medlens' detectors tensor by tensor."""
    for family in ("faster_rcnn", "retinanet"):
        theirs = torchvision_coco_model(family, "resnet50", weights=None)
        ours = create_detector(family, num_classes=90)
        report = transfer_state(ours, theirs.state_dict(), "test")
        assert report["skipped"] == []
        key = "backbone.body.layer3.0.conv1.weight"
        torch.testing.assert_close(ours.state_dict()[f"net.{key}"], theirs.state_dict()[key])


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_coco_weights_offline_fail_at_once_naming_the_file(offline: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ModelWeightsError) as err:
        create_detector("faster_rcnn", num_classes=3, pretrained="coco")
    assert time.monotonic() - start < 30
    assert err.value.path.startswith(str(offline)) and err.value.path.endswith(".pth")
    assert "offline" in str(err.value) and "download.pytorch.org" in str(err.value)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ConfigError, match="publishes COCO weights for"):
        create_detector("faster_rcnn", num_classes=3, backbone="resnet18", pretrained="coco")
    with pytest.raises(ConfigError, match="is a detector"):
        create_model("faster_rcnn")
    with pytest.raises(ConfigError, match="not a registered classifier"):
        create_detector("faster_rcnn", num_classes=3, backbone="unet")
    with pytest.raises(ConfigError, match="needs 5 sizes") as info:
        create_detector("faster_rcnn", num_classes=3, backbone="resnet18", anchor_sizes=[16, 32])
    assert info.value.key == "detection.anchor_sizes"
    with pytest.raises(ConfigError, match="no multi-scale stages"):
        create_detector("faster_rcnn", num_classes=3, backbone="small_cnn")
