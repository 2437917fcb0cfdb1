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


class WarmupLinearDecay(WarmupStep):
    """The MindSpore port's recipe: linear warm-up, then a linear decay between two epochs.

    Args:
        warmup_epochs: epochs of linear warm-up.
        decay_start: epoch at which the linear decay starts.
        decay_end: epoch at which the rate reaches `final_factor` and stays there.
        final_factor: multiplier reached at `decay_end`.
    """

    def __init__(
        self,
        warmup_epochs: int = 5,
        decay_start: int = 15,
        decay_end: int = 27,
        final_factor: float = 0.01,
    ):
        super().__init__(warmup_epochs, (), 1.0)
        self.decay_start, self.decay_end, self.final_factor = decay_start, decay_end, final_factor

    def factor(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        if epoch < self.decay_start:
            return 1.0
        progress = min(1.0, (epoch - self.decay_start) / max(1, self.decay_end - self.decay_start))
        return 1.0 + progress * (self.final_factor - 1.0)
