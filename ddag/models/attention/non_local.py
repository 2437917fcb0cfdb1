"""Non-local block as inserted in the ResNet trunk by AGW.

AGW (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021)
section 4.1; reference: mangye16/Cross-Modal-Re-ID-baseline `model.py` class Non_local:
embedded dot-product affinity divided by the number of positions (no softmax), a 1x1
convolution + BatchNorm back to the input width whose scale and shift start at zero (so each
block starts as the identity), and a residual connection. The reference computes
`inter_channels = reduc_ratio // reduc_ratio`, i.e. 1; that is our default too.
"""

from mindspore import nn, ops
from mindspore.common.initializer import HeNormal


def _pointwise(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        out_channels,
        1,
        has_bias=True,
        weight_init=HeNormal(mode="fan_in"),
        bias_init="zeros",
    )


class NonLocalBlock(nn.Cell):
    """(B, C, H, W) -> (B, C, H, W): x + BN(W(f(theta(x), phi(x)) g(x))).

    Args:
        in_channels: channels C of the feature map.
        inter_channels: channels of theta, phi and g (reference code: 1).
    """

    def __init__(self, in_channels: int, inter_channels: int = 1):
        super().__init__()
        if inter_channels < 1:
            raise ValueError(f"non-local inter_channels must be >= 1, got {inter_channels}")
        self.inter_channels = inter_channels
        self.g = _pointwise(in_channels, inter_channels)
        self.theta = _pointwise(in_channels, inter_channels)
        self.phi = _pointwise(in_channels, inter_channels)
        self.W = _pointwise(inter_channels, in_channels)
        self.bn = nn.BatchNorm2d(in_channels, gamma_init="zeros", beta_init="zeros")

    def construct(self, x):
        b, _, h, w = x.shape
        positions = h * w
        g = self.g(x).reshape(b, self.inter_channels, positions).transpose(0, 2, 1)
        theta = self.theta(x).reshape(b, self.inter_channels, positions).transpose(0, 2, 1)
        phi = self.phi(x).reshape(b, self.inter_channels, positions)
        affinity = ops.bmm(theta, phi) / positions  # (B, N, N)
        y = ops.bmm(affinity, g).transpose(0, 2, 1).reshape(b, self.inter_channels, h, w)
        return x + self.bn(self.W(y))
