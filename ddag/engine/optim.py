"""Optimisers with DDAG's parameter groups (backbone at a fraction of the base learning rate)."""

import numpy as np
from mindspore import Tensor, nn

BACKBONE_PREFIXES = ("visible_stem.", "thermal_stem.", "shared_stem.", "trunk.")


def check_rates(**values: float) -> None:
    """ValueError naming the first negative rate (learning rate, decay, scale)."""
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name}={value} must be >= 0")


def parameter_groups(
    network, lr_per_step: np.ndarray, backbone_lr_scale: float, weight_decay: float
):
    """Two groups: backbone (stems + trunk) at `backbone_lr_scale` x lr, everything else at lr."""
    backbone, head = [], []
    for param in network.trainable_params():
        (backbone if param.name.startswith(BACKBONE_PREFIXES) else head).append(param)
    groups = [{"params": head, "lr": Tensor(lr_per_step), "weight_decay": weight_decay}]
    if backbone:
        groups.append(
            {
                "params": backbone,
                "lr": Tensor(lr_per_step * np.float32(backbone_lr_scale)),
                "weight_decay": weight_decay,
            }
        )
    return groups


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

    def build(self, network, lr_factors: np.ndarray) -> nn.Optimizer:
        """MindSpore optimiser over `network` with per-step rates `lr * lr_factors`."""
        groups = parameter_groups(
            network, self.lr * lr_factors, self.backbone_lr_scale, self.weight_decay
        )
        return nn.SGD(
            groups,
            learning_rate=Tensor(self.lr * lr_factors),
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


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

    def build(self, network, lr_factors: np.ndarray) -> nn.Optimizer:
        groups = parameter_groups(
            network, self.lr * lr_factors, self.backbone_lr_scale, self.weight_decay
        )
        return nn.Adam(
            groups,
            learning_rate=Tensor(self.lr * lr_factors),
            beta1=self.beta1,
            beta2=self.beta2,
            weight_decay=self.weight_decay,
        )
