"""DEE: diverse embedding expansion (DEEN, Zhang and Wang, CVPR 2023).

Reference: ZYK100/LLCM `DEEN/model.py` (class DEE_module and its place in `embed_net.forward`).
After a trunk stage (the third on SYSU-MM01 and LLCM, the second on RegDB), two branches each
average three dilated 3x3 convolutions (dilation 1, 2, 3; channels / 4, no bias), apply ReLU and
a 1x1 convolution back to the channels. The input and both branches are concatenated along the
batch: everything after this module sees three embeddings per image (`rows_per_image`), in the
order input, branch 1, branch 2. Dropout (p 0.01 in the reference) follows, in training only.
"""

from mindspore import nn, ops

from ddag.models.aggregation.mfa import MAX_CHANNELS


def _dilated(channels: int, dilation: int) -> nn.Conv2d:
    return nn.Conv2d(
        channels,
        channels // 4,
        3,
        pad_mode="pad",
        padding=dilation,
        dilation=dilation,
        has_bias=False,
        weight_init="he_normal",
    )


class DiverseEmbeddingExpansion(nn.Cell):
    """(B, C, h, w) -> (3B, C, h, w): the input, then two expanded embeddings.

    Args:
        stage_channels: (input, output channels, stride) of every trunk stage (given by the
            network from its backbone recipe).
        stage: the trunk stage (1-based) whose output is expanded; a stage must follow it.
        dropout: dropout rate on the expanded batch in training (reference 0.01).
    """

    rows_per_image = 3

    def __init__(self, stage_channels, stage: int = 3, dropout: float = 0.01):
        super().__init__()
        channels = self.channels_after(stage_channels, stage)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        self.stage = stage
        self.FC11, self.FC12, self.FC13 = (_dilated(channels, d) for d in (1, 2, 3))
        self.FC1 = nn.Conv2d(channels // 4, channels, 1, has_bias=True, weight_init="he_normal")
        self.FC21, self.FC22, self.FC23 = (_dilated(channels, d) for d in (1, 2, 3))
        self.FC2 = nn.Conv2d(channels // 4, channels, 1, has_bias=True, weight_init="he_normal")
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else None

    @staticmethod
    def channels_after(stage_channels, stage: int) -> int:
        if not 1 <= stage < len(stage_channels):
            raise ValueError(
                f"expansion stage {stage}: a stage must follow it; the trunk has "
                f"{len(stage_channels)} stages"
            )
        channels = stage_channels[stage - 1][1]
        if not 4 <= channels <= MAX_CHANNELS:
            raise ValueError(f"stage {stage} has {channels} channels; DEE needs 4..{MAX_CHANNELS}")
        return channels

    @classmethod
    def expected_shapes(cls, stage_channels, stage: int = 3, **_) -> dict:
        """Tensors witnessing what this module allocates (checked against a file before loading)."""
        channels = cls.channels_after(stage_channels, stage)
        return {
            "FC11.weight": (channels // 4, channels, 3, 3),
            "FC2.weight": (channels, channels // 4, 1, 1),
        }

    def construct(self, x):
        x1 = (self.FC11(x) + self.FC12(x) + self.FC13(x)) / 3
        x1 = self.FC1(ops.relu(x1))
        x2 = (self.FC21(x) + self.FC22(x) + self.FC23(x)) / 3
        x2 = self.FC2(ops.relu(x2))
        out = ops.cat((x, x1, x2), axis=0)
        if self.dropout is not None:
            out = self.dropout(out)
        return out


def per_image(rows_first, rows: int):
    """(rows x N, C) with the embeddings of image i at rows i, N + i, ... -> (N, rows x C)."""
    count = rows_first.shape[0] // rows
    blocks = rows_first.reshape(rows, count, rows_first.shape[1]).transpose(1, 0, 2)
    return blocks.reshape(count, -1)


def orthogonality(pooled, rows: int):
    """DEEN's orthogonal loss: the inner products of the two expanded embeddings of each image
    (the upper triangle of their 2 x 2 Gram matrix), summed over images and divided by all rows
    (ZYK100/LLCM DEEN/model.py, `loss_ort`)."""
    count = pooled.shape[0] // rows
    return (pooled[count : 2 * count] * pooled[2 * count : 3 * count]).sum() / pooled.shape[0]
