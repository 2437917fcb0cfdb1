"""ResNet-IBN-a: instance-batch normalisation in the first norm of layers 1-3.

Pan, Luo, Shi, Tang, "Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net"
(ECCV 2018), IBN-a; reference: XingangPan/IBN-Net `ibnnet/resnet_ibn.py` (class IBN, ratio 0.5).
After each block's first convolution, half the channels are instance-normalised (affine) and
the other half batch-normalised; layer4 and the stem stay as in ResNet. Parameter names follow
the reference (`bn1.IN.*`, `bn1.BN.*`), so its published weights load by name
(`ddag.checkpoints.weight_files` translates the PyTorch norm names).
"""

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ddag.models.backbones.resnet import ResNet


class InstanceNorm(nn.Cell):
    """Per-sample, per-channel normalisation over H x W with a learned scale and shift."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = Parameter(Tensor(np.ones(channels, np.float32)), name="gamma")
        self.beta = Parameter(Tensor(np.zeros(channels, np.float32)), name="beta")

    def construct(self, x):
        mean = x.mean(axis=(2, 3), keep_dims=True)
        var = ((x - mean) ** 2).mean(axis=(2, 3), keep_dims=True)
        scale, shift = self.gamma.reshape(1, -1, 1, 1), self.beta.reshape(1, -1, 1, 1)
        return (x - mean) / ops.sqrt(var + self.eps) * scale + shift


class IBN(nn.Cell):
    """Instance norm on the first `int(channels * ratio)` channels, BatchNorm on the rest."""

    def __init__(self, channels: int, ratio: float = 0.5):
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = InstanceNorm(self.half)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def construct(self, x):
        return ops.cat((self.IN(x[:, : self.half]), self.BN(x[:, self.half :])), axis=1)


class ResNetIBN(ResNet):
    """A ResNet recipe (same arguments) whose blocks in layers 1-3 use IBN-a."""

    def first_norms(self):
        return (IBN, IBN, IBN, nn.BatchNorm2d)
