"""The trainer's moving average of the weights (``train.ema_half_life_epochs``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medlens.config import TrainConfig
from medlens.train.trainer import Trainer, ema_decay


class _SumTask:
    """A regression task whose validation score is the sum of the model's weights, so the
    history shows which weights were scored; it records the weights before every step."""

    score_name = "val_auc"

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def batch_loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple:
        self.seen.append(model.weight.detach().clone())
        x, y = batch
        return ((model(x) - y) ** 2).mean(), len(y)

    def validate(self, model: nn.Module, device: torch.device) -> tuple[float, float]:
        return float(model.weight.detach().sum()), 0.0


def _fit(half_life: float | None, epochs: int = 3) -> tuple[Trainer, _SumTask, Any]:
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    model = nn.Linear(4, 1, bias=False)
    config = TrainConfig(
        epochs=epochs,
        lr=0.05,
        optimizer="sgd",
        scheduler="constant",
        warmup_epochs=0,
        early_stopping_patience=None,
        ema_half_life_epochs=half_life,
    )
    task = _SumTask()
    trainer = Trainer(
        model,
        [{"params": model.parameters()}],
        loader,
        task,
        config,
        torch.device("cpu"),
        progress=False,
    )
    return trainer, task, trainer.fit()


def test_decay_halves_the_weight_of_a_step_after_the_half_life() -> None:
    decay = ema_decay(half_life_epochs=2.0, steps_per_epoch=25)
    assert decay**50 == pytest.approx(0.5)
    assert ema_decay(1.0, 1) == pytest.approx(0.5)


def test_the_kept_weights_are_the_moving_average_of_every_step() -> None:
    trainer, task, fit = _fit(half_life=0.5)
    after_each_step = [*task.seen[1:], trainer.model.weight.detach().clone()]
    decay = ema_decay(0.5, steps_per_epoch=4)
    expected = after_each_step[0]
    for weights in after_each_step[1:]:
        expected = decay * expected + (1 - decay) * weights
    # validation scores rise every epoch here, so the last epoch is the one kept
    assert fit.best_epoch == 3
    torch.testing.assert_close(fit.best_state["weight"], expected)
    assert not torch.allclose(expected, trainer.model.weight)


def test_validation_scores_the_average_and_records_the_trained_weights_beside_it() -> None:
    trainer, _, fit = _fit(half_life=0.5)
    last = fit.history[-1]
    assert last["val_auc"] == pytest.approx(float(fit.best_state["weight"].sum()))
    assert last["val_auc_raw"] == pytest.approx(float(trainer.model.weight.sum()))
    assert last["val_auc"] != pytest.approx(last["val_auc_raw"])


def test_without_a_half_life_the_trained_weights_are_kept() -> None:
    trainer, task, fit = _fit(half_life=None)
    after_each_step = [*task.seen[1:], trainer.model.weight.detach().clone()]
    torch.testing.assert_close(fit.best_state["weight"], after_each_step[4 * fit.best_epoch - 1])
    assert "val_auc_raw" not in fit.history[-1]
