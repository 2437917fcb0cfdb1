"""Learning-rate schedules as pure functions of the epoch, expanded to per-step arrays.

The optimiser receives the per-step array once, so the compiled step never sees a changing Python
scalar and the schedule can be tested without MindSpore.
"""

from typing import Sequence

import numpy as np


class WarmupStep:
    """Linear warm-up then step decay, constant within an epoch.

    Reference: mangye16/DDAG `train_ddag.py` adjust_learning_rate.

    Paper recipe: lr * (e + 1) / 10 for epochs 0-9, lr for 10-19, 0.1 lr for 20-49, 0.01 lr after.

    Args:
        warmup_epochs: epochs of linear warm-up; epoch e < warmup uses lr * (e + 1) / warmup.
        milestones: epochs at which the rate is multiplied by `gamma`.
        gamma: decay factor per milestone.
    """

    def __init__(
        self, warmup_epochs: int = 10, milestones: Sequence[int] = (20, 50), gamma: float = 0.1
    ):
        self.warmup_epochs = warmup_epochs
        self.milestones = tuple(milestones)
        self.gamma = gamma

    def factor(self, epoch: int) -> float:
        """Multiplier of the base rate during `epoch` (0-based)."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        return self.gamma ** sum(epoch >= m for m in self.milestones)

    def per_step(self, base_lr: float, epochs: int, steps_per_epoch: int) -> np.ndarray:
        """float32 array of length epochs * steps_per_epoch."""
        factors = np.array([self.factor(e) for e in range(epochs)], dtype=np.float64)
        return (base_lr * np.repeat(factors, steps_per_epoch)).astype(np.float32)


class PortStepDecay(WarmupStep):
    """The MindSpore port's recipe, exactly as its code computes it.

    Reference: model-zoo research/cv/DDAG `train.py` (learning-rate table). With E = epoch + 1:
    E < warmup: E / warmup; then 1 until `decay_start`; from `decay_start` to `decay_end` one
    more factor `gamma` every epoch (gamma^(E - decay_start + 1)); after `decay_end` the
    `decay_end` value. With the port's 15 and 27 the rate is 1e-13 x lr at the end: learning
    effectively stops after epoch ~17 (spec of the port, not a typo here).

    Args:
        warmup_epochs: epochs of linear warm-up (port 5).
        decay_start: first 1-based epoch multiplied by `gamma` (port 15).
        decay_end: last 1-based epoch that decays (port 27).
        gamma: decay factor per epoch (port 0.1).
    """

    def __init__(
        self, warmup_epochs: int = 5, decay_start: int = 15, decay_end: int = 27, gamma: float = 0.1
    ):
        super().__init__(warmup_epochs, (), gamma)
        self.decay_start, self.decay_end = decay_start, decay_end

    def factor(self, epoch: int) -> float:
        number = epoch + 1
        if number < self.warmup_epochs:
            return number / self.warmup_epochs
        if number < self.decay_start:
            return 1.0
        return self.gamma ** (min(number, self.decay_end) - self.decay_start + 1)
