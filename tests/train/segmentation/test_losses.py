"""Segmentation losses: equal to MONAI's direct calls, blind outside the field of view."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, TverskyLoss

from medlens.errors import ConfigError, InputError
from medlens.train.segmentation.losses import LOSS_NAMES, build_segmentation_loss

K = 3


def _case(dims: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    spatial = (12, 10) if dims == 2 else (6, 8, 5)
    logits = torch.randn((2, K, *spatial), generator=generator)
    labels = torch.randint(0, K, (2, 1, *spatial), generator=generator)
    return logits, labels


def _monai_reference(name: str, **params) -> torch.nn.Module | None:
    """The same loss called straight from MONAI (softmax logits, label-map targets)."""
    common = {"softmax": True, "to_onehot_y": True}
    if name == "dice":
        return DiceLoss(**common, **params)
    if name == "dice_ce":
        return DiceCELoss(**common, **params)
    if name == "tversky":
        return TverskyLoss(**common, **params)
    if name == "focal":
        return FocalLoss(use_softmax=True, to_onehot_y=True, **params)
    return None


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("dice", {}),
        ("dice", {"include_background": False, "jaccard": True}),
        ("dice_ce", {}),
        ("dice_ce", {"lambda_dice": 0.3, "lambda_ce": 2.0, "label_smoothing": 0.1}),
        ("tversky", {"alpha": 0.3, "beta": 0.7}),
        ("focal", {"gamma": 2.0}),
        ("focal", {"gamma": 1.0, "include_background": False}),
    ],
)
def test_each_loss_equals_monai_called_directly(name, params, dims):
    logits, labels = _case(dims)
    ours = build_segmentation_loss(name, K, **params)(logits, labels)
    reference = _monai_reference(name, **params)(logits, labels)
    torch.testing.assert_close(ours, reference)


def test_dice_focal_is_monai_dice_plus_monai_softmax_focal():
    logits, labels = _case()
    ours = build_segmentation_loss("dice_focal", K, gamma=1.5, lambda_dice=0.5, lambda_focal=2.0)(
        logits, labels
    )
    dice = DiceLoss(softmax=True, to_onehot_y=True)(logits, labels)
    focal = FocalLoss(use_softmax=True, to_onehot_y=True, gamma=1.5)(logits, labels)
    torch.testing.assert_close(ours, 0.5 * dice + 2.0 * focal)


def test_labels_without_channel_axis_and_float_labels_give_the_same_loss():
    logits, labels = _case()
    loss = build_segmentation_loss("dice_ce", K)
    expected = loss(logits, labels)
    torch.testing.assert_close(loss(logits, labels[:, 0]), expected)
    torch.testing.assert_close(loss(logits, labels.float()), expected)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_predictions_outside_the_field_of_view_change_neither_loss_nor_gradient(name):
    logits, labels = _case(dims=3, seed=4)
    fov = torch.zeros_like(labels, dtype=torch.bool)
    fov[..., 1:5, 2:7, :] = True
    loss = build_segmentation_loss(name, K)

    def loss_and_grad(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = values.clone().requires_grad_(True)
        value = loss(values, labels, fov)
        value.backward()
        return value.detach(), values.grad

    base, grad = loss_and_grad(logits)
    scrambled = torch.where(fov, logits, 50 * torch.randn_like(logits))
    relabelled = torch.where(fov, labels, (labels + 1) % K)
    after, grad_after = loss_and_grad(scrambled)
    torch.testing.assert_close(after, base)
    torch.testing.assert_close(grad_after, grad)
    assert (grad.abs() * ~fov).sum() == 0, "no gradient flows to voxels outside the mask"
    torch.testing.assert_close(loss(logits, relabelled, fov), base)
    # and the mask does something: the unmasked loss sees the scrambled voxels
    assert not torch.isclose(loss(scrambled, labels), loss(logits, labels))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_masked_loss_equals_the_loss_of_the_cropped_field_of_view(name):
    # cross-entropy and focal average over the voxels inside only: a box mask is a crop
    logits, labels = _case(dims=2, seed=5)
    fov = torch.zeros_like(labels)
    fov[..., 2:9, 3:8] = 1
    loss = build_segmentation_loss(name, K)
    cropped = loss(logits[..., 2:9, 3:8], labels[..., 2:9, 3:8])
    torch.testing.assert_close(loss(logits, labels, fov), cropped)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_full_mask_is_no_mask(name):
    logits, labels = _case(seed=6)
    loss = build_segmentation_loss(name, K)
    torch.testing.assert_close(loss(logits, labels, torch.ones_like(labels)), loss(logits, labels))


def test_an_empty_mask_gives_zero_not_nan():
    logits, labels = _case(seed=7)
    loss = build_segmentation_loss("dice_ce", K)(logits, labels, torch.zeros_like(labels))
    assert torch.isfinite(loss) and abs(float(loss)) < 1e-6


@pytest.mark.parametrize("name", ["dice", "dice_ce", "tversky", "dice_focal"])
def test_a_perfect_prediction_has_almost_no_region_loss(name):
    _, labels = _case(dims=3, seed=8)
    perfect = 30.0 * torch.nn.functional.one_hot(labels[:, 0], K).movedim(-1, 1).float()
    wrong = 30.0 * torch.nn.functional.one_hot((labels[:, 0] + 1) % K, K).movedim(-1, 1).float()
    loss = build_segmentation_loss(name, K)
    assert float(loss(perfect, labels)) < 1e-4
    assert float(loss(wrong, labels)) > 0.9


def test_deep_supervision_outputs_average_their_losses():
    logits, labels = _case(seed=9)
    other, _ = _case(seed=10)
    loss = build_segmentation_loss("dice_ce", K)
    expected = (loss(logits, labels) + loss(other, labels)) / 2
    torch.testing.assert_close(loss([logits, other], labels), expected)


def test_unknown_names_and_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="dice_ce, dice, focal, tversky, dice_focal") as err:
        build_segmentation_loss("lovasz", K)
    assert err.value.key == "segmentation.loss"
    with pytest.raises(ConfigError, match="not a parameter of the dice loss"):
        build_segmentation_loss("dice", K, gamma=2.0)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_segmentation_loss("dice", 1)
    with pytest.raises(ConfigError, match="at least 0"):
        build_segmentation_loss("dice_ce", K, lambda_ce=-1)


def test_labels_out_of_range_or_misshapen_are_input_errors():
    logits, labels = _case()
    loss = build_segmentation_loss("dice_ce", K)
    with pytest.raises(InputError, match=r"\[0, 2\]"):
        loss(logits, labels + K)
    with pytest.raises(InputError, match="fractional"):
        loss(logits, labels.float() + 0.5)
    with pytest.raises(InputError, match="expected shape"):
        loss(logits, labels[..., :5])
    with pytest.raises(InputError, match="mask"):
        loss(logits, labels, torch.ones(2, 1, 3, 3))
