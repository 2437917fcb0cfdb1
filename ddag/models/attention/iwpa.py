"""IWPA: intra-modality weighted-part attention.

DDAG paper section 3.2 (part features, cross-part attention, learnable part weights, residual BN);
reference: mangye16/DDAG `attention.py` class IWPA. The unused "W" block of the reference is left
out. Pooling is adaptive (the MindSpore port's fixed AvgPool2d only fits some map sizes).
"""

from mindspore import Parameter, Tensor, nn, ops
from mindspore.common import dtype as mstype

from ddag.models.heads import batchnorm_inference, frozen_shift_batchnorm

MAX_PARTS = 64  # horizontal stripes of an 18-row feature map; more is a typo


class WeightedPartAttention(nn.Cell):
    """Refines p horizontal part features with cross-part attention and a learned part weighting.

    Args:
        in_channels: channels C of the backbone map.
        num_parts: number of horizontal parts p (paper: 3).
        conv_bias: bias on the three 1x1 convolutions (reference True; the MindSpore port False).
    """

    @classmethod
    def expected_shapes(cls, in_channels: int, num_parts: int = 3, **_) -> dict:
        """Tensors witnessing what this module allocates (checked against a file before loading)."""
        return {"gate": (num_parts,), "fc1.weight": (in_channels, in_channels, 1, 1)}

    def __init__(self, in_channels: int, num_parts: int = 3, conv_bias: bool = True):
        super().__init__()
        if not 1 <= num_parts <= MAX_PARTS:
            raise ValueError(f"num_parts must be between 1 and {MAX_PARTS}, got {num_parts}")
        self.num_parts = num_parts
        self.out_features = in_channels
        self.fc1 = nn.Conv2d(in_channels, in_channels, 1, has_bias=conv_bias)
        self.fc2 = nn.Conv2d(in_channels, in_channels, 1, has_bias=conv_bias)
        self.fc3 = nn.Conv2d(in_channels, in_channels, 1, has_bias=conv_bias)
        self.gate = Parameter(Tensor([1.0 / num_parts] * num_parts), name="gate")
        self.bottleneck = frozen_shift_batchnorm(in_channels)
        # Export with a dynamic batch: rows gathered by index, as ONNX's Slice from MindSpore 2.8
        # fixes the batch axis to the traced size. Same rows, same means; off for training.
        self.dynamic_batch = False

    def _part_pool(self, feature_map):
        """Adaptive average pooling to (p, 1): part i averages rows floor(iH/p)..ceil((i+1)H/p).

        Written with slices of the static shape because MindSpore 2.8 cannot export
        AdaptiveAvgPool2D to ONNX; the bins are those of adaptive pooling.
        """
        parts = ()
        for start, stop in self.part_bounds(feature_map.shape[2]):
            if self.dynamic_batch:
                rows = ops.gather(feature_map, Tensor(list(range(start, stop)), mstype.int32), 2)
            else:
                rows = feature_map[:, :, start:stop, :]
            parts = parts + (rows.mean(axis=(2, 3), keep_dims=True),)
        return ops.cat(parts, axis=2)

    def part_bounds(self, height: int):
        """[(first row, row after the last)] of each part on a map of `height` rows."""
        return [
            ((i * height) // self.num_parts, -((-(i + 1) * height) // self.num_parts))
            for i in range(self.num_parts)
        ]

    def _attention(self, parts):
        query = self.fc1(parts).squeeze(-1).transpose(0, 2, 1)  # (N, p, C)
        key = self.fc2(parts).squeeze(-1)  # (N, C, p)
        return ops.softmax(ops.bmm(query, key), axis=-1)  # (N, p, p), unscaled as in the paper

    def part_weights(self, feature_map):
        """(N, C, H, W) map -> (N, p): the weight with which each part's feature enters the
        attended feature (sum over i of gate_i x attention[i, j]); each row sums to 1."""
        attention = self._attention(self._part_pool(feature_map))
        gate = ops.softmax(self.gate, axis=-1).reshape(1, -1, 1)
        return (attention * gate).sum(axis=1)

    def construct(self, feature_map, global_feature):
        """(N, C, H, W) map and (N, C) BN feature -> (N, C) attended feature."""
        parts = self._part_pool(feature_map)  # (N, C, p, 1)
        attention = self._attention(parts)
        value = self.fc3(parts).squeeze(-1).transpose(0, 2, 1)  # (N, p, C)
        refined = ops.bmm(attention, value)  # (N, p, C)
        weights = ops.softmax(self.gate, axis=-1)
        weighted = (refined * weights.reshape(1, -1, 1)).sum(axis=1)
        if self.dynamic_batch:
            return batchnorm_inference(self.bottleneck, weighted + global_feature)
        return self.bottleneck(weighted + global_feature)
