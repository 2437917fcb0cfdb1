"""MFA: multi-stage feature aggregation between ResNet stages (DEEN, Zhang and Wang, CVPR 2023).

Reference: ZYK100/LLCM `DEEN/model.py` (classes CNL, PNL, MFA_block, and their use in
`embed_net.forward`). After stage s, a block relates the stage's output `x_h` to its input `x_l`
(the previous stage's aggregated output): a channel non-local step (CNL: channel-by-channel
attention, the input side strided by 2 when the stage halves the resolution), then a position
non-local step (PNL: position-by-position attention at half the inner channels). Both add their
output to `x_h` through a 1x1 convolution and a BatchNorm that starts at zero, so a new block is
the identity. The reshapes follow the authors' `view` calls exactly: PNL reads its
`low_dim // 2`-channel maps as `low_dim` rows of half as many positions, which needs an even
number of positions at every aggregated stage.
"""

from typing import Sequence, Tuple

from mindspore import nn, ops

MAX_CHANNELS = 8192


def _pointwise(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, pad_mode="valid", has_bias=True)


def _zero_projection(in_channels: int, out_channels: int, stride: int = 1) -> nn.SequentialCell:
    """1x1 convolution then a BatchNorm whose scale and shift start at 0 (`W` of the reference)."""
    return nn.SequentialCell(
        _pointwise(in_channels, out_channels, stride),
        nn.BatchNorm2d(out_channels, gamma_init="zeros", beta_init="zeros"),
    )


class ChannelNonLocal(nn.Cell):
    """CNL: `x_h + W(attention(theta(x_h), phi(x_l)) @ g(x_l))` over channels.

    Args:
        high_dim: channels of the stage output `x_h`.
        low_dim: channels of the stage input `x_l`.
        strided: the stage halves the resolution (`flag=1`): phi and W use stride 2.
    """

    def __init__(self, high_dim: int, low_dim: int, strided: bool):
        super().__init__()
        stride = 2 if strided else 1
        self.low_dim = low_dim
        self.g = _pointwise(low_dim, low_dim)
        self.theta = _pointwise(high_dim, low_dim)
        self.phi = _pointwise(low_dim, low_dim, stride)
        self.W = _zero_projection(low_dim, high_dim, stride)

    def construct(self, x_h, x_l):
        b = x_h.shape[0]
        g_x = self.g(x_l).reshape(b, self.low_dim, -1)
        theta_x = self.theta(x_h).reshape(b, self.low_dim, -1)
        phi_x = self.phi(x_l).reshape(b, self.low_dim, -1).transpose(0, 2, 1)
        energy = ops.matmul(theta_x, phi_x)
        y = ops.matmul(energy / energy.shape[-1], g_x)
        y = y.reshape(b, self.low_dim, x_l.shape[2], x_l.shape[3])
        return self.W(y) + x_h


class PositionNonLocal(nn.Cell):
    """PNL: `x_h + W(attention(theta(x_h), phi(x_l)) @ g(x_l))` over positions, at
    `low_dim // reduction` inner channels (the reference's reshapes, see the module docstring).
    """

    def __init__(self, high_dim: int, low_dim: int, reduction: int = 2):
        super().__init__()
        inner = low_dim // reduction
        self.low_dim, self.inner = low_dim, inner
        self.g = _pointwise(low_dim, inner)
        self.theta = _pointwise(high_dim, inner)
        self.phi = _pointwise(low_dim, inner)
        self.W = _zero_projection(inner, high_dim)

    def construct(self, x_h, x_l):
        b = x_h.shape[0]
        g_x = self.g(x_l).reshape(b, self.low_dim, -1).transpose(0, 2, 1)
        theta_x = self.theta(x_h).reshape(b, self.low_dim, -1).transpose(0, 2, 1)
        phi_x = self.phi(x_l).reshape(b, self.low_dim, -1)
        energy = ops.matmul(theta_x, phi_x)
        y = ops.matmul(energy / energy.shape[-1], g_x).transpose(0, 2, 1)
        y = y.reshape(b, self.inner, x_h.shape[2], x_h.shape[3])
        return self.W(y) + x_h


class MFABlock(nn.Cell):
    """CNL then PNL: (stage output, stage input) -> the stage's aggregated output."""

    def __init__(self, high_dim: int, low_dim: int, strided: bool):
        super().__init__()
        self.CNL = ChannelNonLocal(high_dim, low_dim, strided)
        self.PNL = PositionNonLocal(high_dim, low_dim)

    def construct(self, x, x0):
        return self.PNL(self.CNL(x, x0), x0)


def _block_sizes(stage_channels, stages) -> Tuple[Tuple[int, int, bool], ...]:
    built = len(stage_channels)
    if not stages or list(stages) != sorted(set(stages)) or not 1 <= min(stages):
        raise ValueError(f"aggregation stages must be increasing stage numbers, got {stages}")
    if max(stages) >= built:
        raise ValueError(
            f"aggregation stages {list(stages)}: a block needs a stage after it; the trunk has "
            f"{built} stages, so the last block may follow stage {built - 1}"
        )
    sizes = []
    for stage in stages:
        low, high, stride = stage_channels[stage - 1]
        if not (1 <= low <= MAX_CHANNELS and 2 <= high <= MAX_CHANNELS and low % 2 == 0):
            raise ValueError(f"stage {stage} channels {low}->{high} cannot take an MFA block")
        sizes.append((high, low, stride != 1))
    return tuple(sizes)


class MultiStageAggregation(nn.Cell):
    """MFA blocks after the listed trunk stages (DEEN: [1, 2, 3] on SYSU-MM01 and LLCM, [1, 2]
    on RegDB), each sized by that stage's (input, output) channels and stride.

    Args:
        stage_channels: (input channels, output channels, stride) of every trunk stage (given
            by the network from its backbone recipe).
        stages: stage numbers (1-based) followed by a block.
    """

    def __init__(self, stage_channels: Sequence[Tuple[int, int, int]], stages=(1, 2, 3)):
        super().__init__()
        sizes = _block_sizes(stage_channels, stages)
        self.stages = tuple(stages)
        self.blocks = nn.CellList([MFABlock(*size) for size in sizes])

    @classmethod
    def expected_shapes(cls, stage_channels, stages=(1, 2, 3), **_) -> dict:
        """Tensors witnessing what the blocks allocate (checked against a file before loading)."""
        shapes = {}
        for index, (high, low, _) in enumerate(_block_sizes(stage_channels, stages)):
            prefix = f"blocks.{index}."
            shapes[prefix + "CNL.theta.weight"] = (low, high, 1, 1)
            shapes[prefix + "PNL.W.0.weight"] = (high, low // 2, 1, 1)
        return shapes

    def block_index(self, stage: int) -> int:
        """Index into `blocks` of the block after `stage`, or -1."""
        return self.stages.index(stage) if stage in self.stages else -1
