"""BN neck and identity classifier shared by the global and part-attention branches.

Reference: mangye16/DDAG `model_main.py` (bottleneck BatchNorm1d with frozen shift, bias-free
classifier initialised N(0, 0.001)).
"""

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal


def frozen_shift_batchnorm(channels: int, seed: int = 0) -> nn.BatchNorm1d:
    """BatchNorm1d whose shift (beta) stays 0 and whose scale starts at N(1, 0.01)."""
    bn = nn.BatchNorm1d(channels)
    scale = np.random.default_rng(seed).normal(1.0, 0.01, channels).astype(np.float32)
    bn.gamma = Parameter(Tensor(scale), name="gamma")
    bn.beta.requires_grad = False
    return bn


def batchnorm_inference(bn: nn.BatchNorm1d, x):
    """`bn` in inference mode written out with its statistics: MindSpore 2.8's BatchNorm1d
    reshapes to the traced batch size, so an export with a dynamic batch uses this."""
    scale = bn.gamma / ops.sqrt(bn.moving_variance + bn.eps)
    return (x - bn.moving_mean) * scale + bn.beta


def identity_classifier(in_features: int, num_classes: int) -> nn.Dense:
    """Bias-free linear layer (N, in_features) -> (N, num_classes)."""
    return nn.Dense(in_features, num_classes, weight_init=Normal(0.001), has_bias=False)
