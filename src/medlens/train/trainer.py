"""One trainer for every task: epochs, validation, early stopping, checkpoints, resume.

What differs between tasks — how a batch becomes a loss, and how validation scores the model —
is a ``TrainingTask`` (``ClassificationTask`` here; segmentation has its own).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medlens.config import TrainConfig
from medlens.errors import ConfigError
from medlens.run_folder import layout
from medlens.run_folder.checkpoint import load_checkpoint, save_checkpoint
from medlens.train.distributed import DistContext, broadcast_object
from medlens.train.sampler import EpochSampler
from medlens.train.schedule import WarmupCosine

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class FitResult:
    """What training produced: the best weights (a copy, not a reference) and the curves."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    planned_epochs: int = 0


def validation_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Validation AUC (binary, or macro one-vs-rest); NaN when a class is missing."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    present = np.unique(labels)
    if len(present) < probs.shape[1]:
        return float("nan")
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def ema_decay(half_life_epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay of a moving average whose weight halves every ``half_life_epochs``
    epochs of ``steps_per_epoch`` optimizer steps: ``0.5 ** (1 / (half_life * steps))``."""
    return float(0.5 ** (1.0 / (half_life_epochs * max(steps_per_epoch, 1))))


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, nn.Module) else model


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    tta_flip: bool = False,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax probabilities, labels and dataset indices for every item of ``loader``.

    With ``tta_flip`` the probabilities are averaged with those of the input mirrored along
    its last (left-right) axis.
    """
    model.eval()
    probs, labels, indices = [], [], []
    for x, y, idx in tqdm(loader, desc="predict", leave=False, disable=not progress):
        x = x.to(device, non_blocking=True)
        p = torch.softmax(model(x).float(), dim=1)
        if tta_flip:
            p = 0.5 * (p + torch.softmax(model(torch.flip(x, dims=(-1,))).float(), dim=1))
        probs.append(p.cpu().numpy())
        labels.append(np.asarray(y))
        indices.append(np.asarray(idx))
    if not probs:
        return np.zeros((0, 0)), np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(indices)


class TrainingTask(Protocol):
    """What the trainer asks of a task.

    Attributes:
        score_name: the history column of the validation score (higher is better), e.g.
            ``val_auc`` or ``val_dice``.
    """

    score_name: str

    def batch_loss(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        """The mean loss over one training batch, and the number of samples in it."""
        ...

    def validate(self, model: nn.Module, device: torch.device) -> tuple[float, float]:
        """``(score, loss)`` on the validation data; NaN where undefined."""
        ...


class ClassificationTask:
    """Image -> class logits; validation AUC, ties broken by cross-entropy."""

    score_name = "val_auc"

    def __init__(self, loss_fn: nn.Module, val_loader: DataLoader) -> None:
        self.loss_fn = loss_fn
        self.val_loader = val_loader

    def batch_loss(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        x, y, _ = batch
        x = x.to(device, non_blocking=True)
        y = torch.as_tensor(y, device=device)
        self.loss_fn.to(device)
        return self.loss_fn(model(x).float(), y), len(y)

    def validate(self, model: nn.Module, device: torch.device) -> tuple[float, float]:
        probs, labels, _ = predict_probs(model, self.val_loader, device)
        if len(labels) == 0:
            return float("nan"), float("nan")
        logp = np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))
        return validation_score(labels, probs), float(-logp.mean())


class Trainer:
    """Trains ``model`` on ``train_loader``, validates through ``task`` each epoch.

    The best epoch (highest validation score, ties to lower validation loss) is kept as a deep
    copy of the weights. ``last.pt`` in ``checkpoint_dir`` is written after every epoch so a
    killed run resumes exactly where it stopped (same seed -> same final weights).
    With ``config.ema_half_life_epochs`` set, an exponential moving average of the weights
    (and BatchNorm statistics) is updated after every optimizer step; validation scores
    and the kept best epoch then come from the average, and the raw model's validation
    score is recorded beside it as ``<score>_raw``.

    Args:
        model: the classifier (already wrapped in DDP when distributed).
        param_groups: optimizer parameter groups (fine-tuning strategy applied).
        train_loader: the training batches, in the form ``task.batch_loss`` takes.
        task: turns a batch into a loss and scores validation (``ClassificationTask``...).
        config: the train section of the run config.
        checkpoint_dir: where ``last.pt`` goes; ``None`` disables checkpoints.
        callbacks: called as ``cb(epoch, record)`` after each epoch (tests use one to
            simulate a kill).
        fingerprint: identifies the run's config; resuming from a ``last.pt`` written
            under another config is refused.
    """

    def __init__(
        self,
        model: nn.Module,
        param_groups: list[dict[str, Any]],
        train_loader: DataLoader,
        task: TrainingTask,
        config: TrainConfig,
        device: torch.device,
        checkpoint_dir: Path | None = None,
        dist_ctx: DistContext | None = None,
        callbacks: Sequence[EpochCallback] = (),
        progress: bool = True,
        on_epoch_start: Callable[[nn.Module], None] | None = None,
        fingerprint: str = "",
    ) -> None:
        self.model = model
        self.fingerprint = fingerprint
        self.config = config
        self.train_loader = train_loader
        self.task = task
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.dist = dist_ctx or DistContext()
        self.callbacks = list(callbacks)
        self.progress = progress and self.dist.is_main
        self.on_epoch_start = on_epoch_start
        if config.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                param_groups, lr=config.lr, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                param_groups,
                lr=config.lr,
                momentum=0.9,
                nesterov=True,
                weight_decay=config.weight_decay,
            )
        steps_per_epoch = max(1, len(train_loader))
        self.steps_per_epoch = steps_per_epoch
        self.scheduler = WarmupCosine(
            self.optimizer,
            total_steps=config.epochs * steps_per_epoch,
            warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
            cosine=config.scheduler == "cosine",
        )
        self.use_amp = config.amp and device.type == "cuda"
        self.ema: AveragedModel | None = None
        if config.ema_half_life_epochs is not None:
            self.ema = AveragedModel(
                _unwrap(model),
                multi_avg_fn=get_ema_multi_avg_fn(
                    ema_decay(config.ema_half_life_epochs, steps_per_epoch)
                ),
                use_buffers=True,
            )

    @property
    def scored_model(self) -> nn.Module:
        """The weights validation scores and the best epoch keeps: the moving average when
        ``ema_half_life_epochs`` is set, the trained weights otherwise."""
        return self.ema.module if self.ema is not None else _unwrap(self.model)

    # -- checkpoints -----------------------------------------------------------------------
    def _last_path(self) -> Path | None:
        return self.checkpoint_dir / layout.LAST if self.checkpoint_dir else None

    def _save_last(
        self, epoch: int, result: FitResult, bad_epochs: int, elapsed: float, finished: bool
    ) -> None:
        path = self._last_path()
        if path is None or not self.dist.is_main:
            return
        save_checkpoint(
            {
                "model": _unwrap(self.model).state_dict(),
                "model_config": getattr(_unwrap(self.model), "config", {}),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": epoch,
                "finished": finished,
                "fingerprint": self.fingerprint,
                "best_state": result.best_state,
                "best_epoch": result.best_epoch,
                "best_score": result.best_score,
                "history": result.history,
                "bad_epochs": bad_epochs,
                "elapsed": elapsed,
                "planned_epochs": result.planned_epochs,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            path,
        )

    def _resume(self) -> tuple[int, FitResult, int, float, bool]:
        path = self._last_path()
        assert path is not None
        state = load_checkpoint(path)
        if state.get("fingerprint", "") != self.fingerprint:
            raise ConfigError(
                "<config>",
                f"differs from the config of the run being resumed ({path}); "
                "resume with the same config, or start a new run",
            )
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        result = FitResult(
            best_state=state["best_state"],
            best_epoch=state["best_epoch"],
            best_score=state["best_score"],
            history=state["history"],
            planned_epochs=state["planned_epochs"],
        )
        return state["epoch"] + 1, result, state["bad_epochs"], state["elapsed"], state["finished"]

    # -- one epoch -------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> float:
        self.model.train()
        if self.on_epoch_start is not None:
            self.on_epoch_start(_unwrap(self.model))
        sampler = self.train_loader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.set_epoch(epoch)
        dataset = self.train_loader.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        total, count = 0.0, 0
        bar = tqdm(
            self.train_loader, desc=f"epoch {epoch + 1}", leave=False, disable=not self.progress
        )
        for batch in bar:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                loss, n = self.task.batch_loss(self.model, batch, self.device)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at epoch {epoch + 1}; lower train.lr"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(_unwrap(self.model))
            total += loss.item() * n
            count += n
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    def _validate(self) -> tuple[float, float]:
        return self.task.validate(self.scored_model, self.device)

    # -- the loop --------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FitResult:
        """Train until the planned epochs, early stopping or the time budget end it.

        Under DDP every stopping decision is rank 0's, sent to all ranks, so no rank waits
        forever for another that stopped.
        """
        cfg = self.config
        start_epoch, bad_epochs, elapsed_before, finished = 0, 0, 0.0, False
        result = FitResult(
            best_state={}, best_epoch=-1, best_score=-math.inf, planned_epochs=cfg.epochs
        )
        last = self._last_path()
        if resume and last is not None and last.is_file():
            start_epoch, result, bad_epochs, elapsed_before, finished = self._resume()
        t0 = time.perf_counter() - elapsed_before
        epoch = start_epoch
        while not finished and epoch < result.planned_epochs:
            t_epoch = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            val_score, val_loss = self._validate()
            seconds = time.perf_counter() - t_epoch
            score_name = self.task.score_name
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                score_name: val_score,
                "lr": self.optimizer.param_groups[-1]["lr"],
                "seconds": seconds,
            }
            if self.ema is not None:
                # The trained (not averaged) weights' scores, so the curves show what the
                # average bought.
                raw_score, raw_loss = self.task.validate(_unwrap(self.model), self.device)
                record.update({f"{score_name}_raw": raw_score, "val_loss_raw": raw_loss})
            result.history.append(record)
            score = val_score if not math.isnan(val_score) else -val_loss
            best_loss = (
                result.history[result.best_epoch - 1]["val_loss"]
                if result.best_epoch > 0
                else math.inf
            )
            if score > result.best_score or (score == result.best_score and val_loss < best_loss):
                result.best_score, result.best_epoch, bad_epochs = score, epoch + 1, 0
                result.best_state = copy.deepcopy(self.scored_model.state_dict())
            else:
                bad_epochs += 1
            if cfg.max_minutes is not None:
                # Re-fitted after every epoch from the mean epoch time so far, so the cosine
                # still ends where the budget does when epochs slow down (a busy machine).
                planned = broadcast_object(
                    self._epochs_in_budget(epoch + 1, time.perf_counter() - t0), self.dist
                )
                result.planned_epochs = int(planned)  # type: ignore[call-overload]
                self.scheduler.total_steps = result.planned_epochs * self.steps_per_epoch
            if self.progress:
                tqdm.write(
                    f"epoch {epoch + 1}/{result.planned_epochs}  train_loss {train_loss:.4f}  "
                    f"val_loss {val_loss:.4f}  {score_name} {val_score:.4f}  ({seconds:.1f} s)"
                )
            epoch += 1
            patience = cfg.early_stopping_patience
            out_of_time = (
                cfg.max_minutes is not None
                and (time.perf_counter() - t0) + seconds > cfg.max_minutes * 60
            )
            stop = (patience is not None and bad_epochs >= patience) or out_of_time
            finished = bool(broadcast_object(stop, self.dist)) or epoch >= result.planned_epochs
            self._save_last(epoch - 1, result, bad_epochs, time.perf_counter() - t0, finished)
            for callback in self.callbacks:
                callback(epoch, record)
        result.train_seconds = time.perf_counter() - t0
        return result

    def _epochs_in_budget(self, epochs_done: int, elapsed: float) -> int:
        """How many epochs fit the time budget at the mean epoch time so far (at least the
        ones done; at most ``epochs``): the cosine schedule is fitted to that length so it
        ends where the budget does."""
        budget = (self.config.max_minutes or 0.0) * 60
        mean_epoch = max(elapsed / max(epochs_done, 1), 1e-6)
        remaining = max(budget * 0.97 - elapsed, 0.0)
        fit = epochs_done + int(remaining // mean_epoch)
        return max(epochs_done, min(self.config.epochs, max(fit, 1)))
