"""Learning-rate schedules as pure functions of the epoch, expanded to per-step arrays.

The optimiser receives the per-step array of each parameter group once, so the compiled step
never sees a changing Python scalar and the schedule can be tested without MindSpore. A
schedule's `per_step(peak_lr, epochs, steps_per_epoch, reference_lr)` gives the rates of a
group whose peak rate is `peak_lr`; `reference_lr` (the optimiser's base rate) is what a
schedule with absolute floors (PMT's cosine) measures them against.
"""

import math
from typing import Callable, Optional, Sequence

import numpy as np

# (peak rate of a parameter group, the optimiser's base rate) -> that group's per-step rates.
RateTable = Callable[[float, float], np.ndarray]


def schedule_rates(schedule, epochs: int, steps_per_epoch: int) -> RateTable:
    """The RateTable of `schedule` over `epochs` epochs of `steps_per_epoch` steps."""

    def rates(peak_lr: float, reference_lr: float) -> np.ndarray:
        return schedule.per_step(peak_lr, epochs, steps_per_epoch, reference_lr)

    return rates


def factor_rates(factors: np.ndarray) -> RateTable:
    """The RateTable that scales every group's peak rate by the same per-step `factors`."""
    factors = np.asarray(factors, np.float64)

    def rates(peak_lr: float, reference_lr: float) -> np.ndarray:
        return (peak_lr * factors).astype(np.float32)

    return rates


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

    def per_step(
        self,
        base_lr: float,
        epochs: int,
        steps_per_epoch: int,
        reference_lr: Optional[float] = None,
    ) -> np.ndarray:
        """float32 array of length epochs * steps_per_epoch (`reference_lr` unused: the
        rates are proportional to `base_lr`)."""
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


class WarmupCosine:
    """Linear warm-up from a floor, then a half cosine down to it, constant within an epoch.

    Reference: hulu88/PMT `scheduler.py` (timm's CosineLRScheduler) as `create_scheduler` sets
    it, stepped once per epoch with the authors' 1-based epoch number t = epoch + 1: for
    t < warmup, `start + t (peak - start) / warmup`; then `floor + (peak - floor) (1 +
    cos(pi t / period)) / 2` while t < period, and `floor` from t = period on (one cycle).
    `start` and `floor` are fractions of the optimiser's base rate, the same absolute value
    for every parameter group (PMT: 0.01 x BASE_LR), while each group warms up to and decays
    from its own peak (PMT's blocks and patch embedding peak at LR_PRETRAIN 0.5 x BASE_LR).

    Args:
        warmup_epochs: epochs of warm-up (PMT 3).
        start_factor: warm-up start, x the base rate (PMT LR_INIT 0.01).
        floor_factor: the cosine's floor, x the base rate (PMT LR_MIN 0.01).
        period: epochs of the cosine (PMT MAX_EPOCH); null: the run's `task.epochs`.
    """

    def __init__(
        self,
        warmup_epochs: int = 3,
        start_factor: float = 0.01,
        floor_factor: float = 0.01,
        period: Optional[int] = None,
    ):
        if warmup_epochs < 0 or (period is not None and period < 1):
            raise ValueError(f"warmup_epochs={warmup_epochs} >= 0 and period={period} >= 1")
        if start_factor < 0 or floor_factor < 0:
            raise ValueError(f"start_factor={start_factor}, floor_factor={floor_factor} >= 0")
        self.warmup_epochs, self.period = warmup_epochs, period
        self.start_factor, self.floor_factor = start_factor, floor_factor

    def rate(self, epoch: int, peak_lr: float, reference_lr: float, epochs: int) -> float:
        """The rate of a group peaking at `peak_lr` during 0-based `epoch`."""
        t = epoch + 1
        period = self.period or epochs
        start = self.start_factor * reference_lr
        floor = self.floor_factor * reference_lr
        if t < self.warmup_epochs:
            return start + t * (peak_lr - start) / self.warmup_epochs
        if t >= period:
            return floor
        return floor + 0.5 * (peak_lr - floor) * (1 + math.cos(math.pi * t / period))

    def per_step(
        self,
        base_lr: float,
        epochs: int,
        steps_per_epoch: int,
        reference_lr: Optional[float] = None,
    ) -> np.ndarray:
        """float32 array of length epochs * steps_per_epoch for a group peaking at
        `base_lr` (`reference_lr`, default `base_lr`: what the floors are fractions of)."""
        reference = base_lr if reference_lr is None else reference_lr
        values = [self.rate(e, base_lr, reference, epochs) for e in range(epochs)]
        return np.repeat(np.asarray(values, np.float64), steps_per_epoch).astype(np.float32)
