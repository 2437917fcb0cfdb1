"""Optimisers with DDAG's parameter groups (backbone at a fraction of the base learning rate).

Every recipe's `build(network, rates)` takes the schedule's RateTable (`ddag.engine.schedules`):
each parameter group gets `rates(its peak rate, the recipe's lr)` as its per-step rates. A
per-step array of factors is accepted too (every group scaled by it).
"""

from typing import Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from ddag.engine.schedules import RateTable, factor_rates

# DEEN trains its modules between stages at the backbone rate (all but the BN neck and classifier).
BACKBONE_PREFIXES = (
    "visible_stem.",
    "thermal_stem.",
    "shared_stem.",
    "trunk.",
    "aggregation.",
    "expansion.",
)


def check_rates(**values: float) -> None:
    """ValueError naming the first negative rate (learning rate, decay, scale)."""
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name}={value} must be >= 0")


class _GroupedUpdate(nn.Cell):
    """What the group optimisers share: the parameters of every group in one tuple, each
    one's group and weight decay, the groups' per-step rates (`learning_rate_group_<i>`)
    and the step counter (`global_step`)."""

    def __init__(self, groups):
        super().__init__(auto_prefix=False)
        params, group_of, decay = [], [], []
        for index, group in enumerate(groups):
            params += group["params"]
            group_of += [index] * len(group["params"])
            decay += [float(group["weight_decay"])] * len(group["params"])
        self.parameters = ParameterTuple(params)
        self.learning_rates = ParameterTuple(
            Parameter(Tensor(np.asarray(group["lr"], np.float32)), f"learning_rate_group_{i}")
            for i, group in enumerate(groups)
        )
        self.global_step = Parameter(Tensor([0], ms.int32), name="global_step")
        self.group_of, self.decay = tuple(group_of), tuple(decay)

    def current_rates(self):
        """Every group's rate at the current step."""
        return [ops.gather(lr, self.global_step, 0).reshape(()) for lr in self.learning_rates]


def as_rates(rates) -> RateTable:
    """A RateTable, or a per-step array of factors turned into one."""
    return rates if callable(rates) else factor_rates(rates)


def parameter_groups(
    network,
    rates,
    lr: float,
    backbone_lr_scale: float,
    weight_decay: float,
    backbone_prefixes: Optional[Sequence[str]] = None,
):
    """Two groups: the backbone's parameters (names starting with one of `backbone_prefixes`,
    default the stems, trunk and DEEN's modules) peaking at `backbone_lr_scale` x lr,
    everything else at lr; `rates` (a RateTable or per-step factors) gives each its per-step
    rates."""
    rates = as_rates(rates)
    prefixes = tuple(backbone_prefixes) if backbone_prefixes else BACKBONE_PREFIXES
    backbone, head = [], []
    for param in network.trainable_params():
        (backbone if param.name.startswith(prefixes) else head).append(param)
    groups = [{"params": head, "lr": Tensor(rates(lr, lr)), "weight_decay": weight_decay}]
    if backbone:
        groups.append(
            {
                "params": backbone,
                "lr": Tensor(rates(lr * backbone_lr_scale, lr)),
                "weight_decay": weight_decay,
            }
        )
    return groups


class GroupSGD(_GroupedUpdate):
    """PyTorch's SGD over parameter groups, each with its own per-step learning rates.

    Per parameter and step (PyTorch's `torch.optim.SGD` with dampening 0): `g = grad + wd * p`;
    `buf = g` on the first step, then `buf = momentum * buf + g`; `p -= lr * (g + momentum *
    buf)` with Nesterov, else `p -= lr * buf`. The update is MindSpore's SGD kernel, as in
    `nn.SGD`, and the state keeps `nn.SGD`'s names (`global_step`, `momentum`,
    `learning_rate_group_<i>`, `accum.*`, `stat.*`), so checkpoints of either load into the other.
    The kernel adds the weight decay itself, so updates agree with `nn.SGD`'s to float32 rounding.

    Unlike `nn.SGD`, whose update is always compiled, this cell runs eagerly in PyNative mode
    (no ~3 s compilation before the first step) and adds only its kernels to a compiled step.

    Args:
        groups: [{"params": [...], "lr": per-step rates (1-D), "weight_decay": float}, ...].
        momentum: momentum factor (> 0 with Nesterov).
        nesterov: Nesterov momentum.
    """

    def __init__(self, groups, momentum: float, nesterov: bool):
        if nesterov and momentum <= 0:
            raise ValueError(f"Nesterov momentum needs momentum > 0, got {momentum}")
        super().__init__(groups)
        self.accum = self.parameters.clone(prefix="accum", init="zeros")
        self.stat = self.parameters.clone(prefix="stat", init="ones")
        self.momentum = Parameter(Tensor(momentum, ms.float32), name="momentum")
        # The kernel adds the weight decay itself: one kernel per parameter and step (an eager
        # step dispatches each one separately).
        kernels = {wd: ops.SGD(0.0, wd, nesterov) for wd in sorted(set(self.decay))}
        self.updates = tuple(kernels[wd] for wd in self.decay)

    def construct(self, gradients):
        rates = self.current_rates()
        done = True
        for i in range(len(self.parameters)):
            rate = rates[self.group_of[i]]
            done = ops.depend(
                done,
                self.updates[i](
                    self.parameters[i],
                    gradients[i],
                    rate,
                    self.accum[i],
                    self.momentum,
                    self.stat[i],
                ),
            )
        return ops.depend(done, ops.assign_add(self.global_step, Tensor([1], ms.int32)))


class SGD:
    """SGD recipe of the paper: momentum 0.9, Nesterov, weight decay 5e-4, backbone 0.1x lr.

    Args:
        lr: base learning rate (paper 0.1).
        momentum: momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay.
        backbone_lr_scale: factor of the backbone's learning rate.
    """

    def __init__(
        self,
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        backbone_lr_scale: float = 0.1,
    ):
        check_rates(lr=lr, weight_decay=weight_decay, backbone_lr_scale=backbone_lr_scale)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.weight_decay, self.backbone_lr_scale = weight_decay, backbone_lr_scale

    def build(self, network, rates) -> GroupSGD:
        """Optimiser over `network` with the per-step rates of `rates` (a RateTable, or
        factors of `lr`)."""
        groups = parameter_groups(
            network, rates, self.lr, self.backbone_lr_scale, self.weight_decay
        )
        return GroupSGD(groups, momentum=self.momentum, nesterov=self.nesterov)


class Adam:
    """Adam recipe of the MindSpore port.

    Args:
        lr: base learning rate (port 0.0035).
        weight_decay: L2 weight decay.
        backbone_lr_scale: factor of the backbone's learning rate.
        beta1: first-moment decay.
        beta2: second-moment decay.
    """

    def __init__(
        self,
        lr: float = 0.0035,
        weight_decay: float = 5e-4,
        backbone_lr_scale: float = 1.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
    ):
        check_rates(lr=lr, weight_decay=weight_decay, backbone_lr_scale=backbone_lr_scale)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"beta1={beta1} and beta2={beta2} must be in [0, 1)")
        self.lr, self.weight_decay, self.backbone_lr_scale = lr, weight_decay, backbone_lr_scale
        self.beta1, self.beta2 = beta1, beta2

    def build(self, network, rates) -> nn.Optimizer:
        groups = parameter_groups(
            network, rates, self.lr, self.backbone_lr_scale, self.weight_decay
        )
        return nn.Adam(
            groups,
            learning_rate=groups[0]["lr"],
            beta1=self.beta1,
            beta2=self.beta2,
            weight_decay=self.weight_decay,
        )


class GroupAdamW(_GroupedUpdate):
    """PyTorch's AdamW (decoupled weight decay, bias-corrected moments, amsgrad off) over
    parameter groups, each with its own per-step learning rates.

    Per parameter at step t (1-based), as `torch.optim.AdamW` computes it: `p *= 1 - lr wd`;
    `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`; `p -= lr / (1 - b1^t) m / (sqrt(v) /
    sqrt(1 - b2^t) + eps)`. MindSpore's fused `AdamWeightDecay` kernel (no bias correction)
    computes it with the corrections folded into its inputs: rate `lr sqrt(1 - b2^t) / (1 -
    b1^t)`, epsilon `eps sqrt(1 - b2^t)` and decay `wd lr / that rate`, equal algebraically.
    State names: `global_step`, `learning_rate_group_<i>`, `moment1.*`, `moment2.*`.

    Args:
        groups: [{"params": [...], "lr": per-step rates (1-D), "weight_decay": float}, ...].
        beta1, beta2, eps: as torch's `betas` and `eps`.
    """

    def __init__(self, groups, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(groups)
        self.moment1 = self.parameters.clone(prefix="moment1", init="zeros")
        self.moment2 = self.parameters.clone(prefix="moment2", init="zeros")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.update = ops.AdamWeightDecay()

    def construct(self, gradients):
        rates = self.current_rates()
        t = (self.global_step + 1).astype(ms.float32).reshape(())
        correction1 = 1.0 - ops.pow(Tensor(self.beta1, ms.float32), t)
        root2 = ops.sqrt(1.0 - ops.pow(Tensor(self.beta2, ms.float32), t))
        beta1 = Tensor(self.beta1, ms.float32)
        beta2 = Tensor(self.beta2, ms.float32)
        eps = root2 * self.eps
        done = True
        for i in range(len(self.parameters)):
            lr = rates[self.group_of[i]]
            folded = lr * root2 / correction1
            decay = self.decay[i] * correction1 / root2  # = wd lr / folded
            done = ops.depend(
                done,
                self.update(
                    self.parameters[i],
                    self.moment1[i],
                    self.moment2[i],
                    folded,
                    beta1,
                    beta2,
                    eps,
                    decay,
                    gradients[i],
                ),
            )
        return ops.depend(done, ops.assign_add(self.global_step, Tensor([1], ms.int32)))


class AdamW:
    """PyTorch's AdamW recipe with a backbone group, as hulu88/PMT `optimizer.py` builds it.

    PMT: lr 3e-4, weight decay 1e-4 on every parameter (its bias settings equal the others),
    the patch embedding and the transformer blocks at LR_PRETRAIN 0.5 x lr, everything else
    (class and position embeddings, final norm, BN neck, classifier) at lr.

    Args:
        lr: base learning rate.
        weight_decay: decoupled weight decay.
        backbone_lr_scale: factor of the backbone group's peak rate.
        backbone_prefixes: parameter-name prefixes of the backbone group (null: the stems,
            trunk and DEEN's modules, as for SGD).
        beta1, beta2, eps: torch's defaults 0.9, 0.999, 1e-8.
    """

    def __init__(
        self,
        lr: float = 3e-4,
        weight_decay: float = 1e-4,
        backbone_lr_scale: float = 1.0,
        backbone_prefixes: Optional[Sequence[str]] = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        check_rates(lr=lr, weight_decay=weight_decay, backbone_lr_scale=backbone_lr_scale)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1) or not 0 < eps < 1:
            raise ValueError(f"beta1={beta1}, beta2={beta2} must be in [0, 1), eps={eps} in (0, 1)")
        self.lr, self.weight_decay, self.backbone_lr_scale = lr, weight_decay, backbone_lr_scale
        self.backbone_prefixes = tuple(backbone_prefixes) if backbone_prefixes else None
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def build(self, network, rates) -> GroupAdamW:
        groups = parameter_groups(
            network,
            rates,
            self.lr,
            self.backbone_lr_scale,
            self.weight_decay,
            self.backbone_prefixes,
        )
        return GroupAdamW(groups, self.beta1, self.beta2, self.eps)
