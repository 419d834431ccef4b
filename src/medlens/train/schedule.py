"""Learning-rate schedule: linear warm-up, then cosine decay to zero."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosine(LambdaLR):
    """Linear warm-up over ``warmup_steps``, then cosine decay over the remaining steps.

    ``total_steps`` may be changed after construction (a time-budgeted run re-plans its
    length after the first epoch); the factor is read from the current value at every step.
    """

    def __init__(
        self, optimizer: Optimizer, total_steps: int, warmup_steps: int, cosine: bool = True
    ) -> None:
        self.total_steps = max(1, total_steps)
        self.warmup_steps = max(0, warmup_steps)
        self.cosine = cosine
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if not self.cosine:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)
