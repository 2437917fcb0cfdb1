"""ResNet backbones split the way DDAG needs them: a modality-specific stem and a shared trunk.

DDAG paper section 3.1 (two-stream ResNet-50, last stride 1); reference: mangye16/DDAG
`model_main.py` (visible_module / thermal_module / base_resnet). Block and parameter names follow
the MindSpore model-zoo ResNet (conv1, bn1, ..., down_sample_layer) so that published checkpoints
map onto ours through the explicit table in `ddag/io/checkpoint.py`.
"""

from typing import Optional, Sequence

from mindspore import nn, ops
from mindspore.common.initializer import HeNormal

from ddag.io.checkpoint import backbone_name, load_into, read_checkpoint
from ddag.utils.logging import get_logger

log = get_logger(__name__)

EXPANSION = 4


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        pad_mode="pad",
        padding=kernel // 2,
        has_bias=False,
        weight_init=HeNormal(mode="fan_out", nonlinearity="relu"),
    )


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (strided) -> 1x1 residual block with expansion 4."""

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = _conv(in_channels, width, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv(width, width, 3, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv(width, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.has_down_sample = stride != 1 or in_channels != out_channels
        if self.has_down_sample:
            self.down_sample_layer = nn.SequentialCell(
                _conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels)
            )

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.has_down_sample:
            identity = self.down_sample_layer(x)
        return self.relu(out + identity)


class Stem(nn.Cell):
    """conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2: (B, 3, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(3, channels, 7, 2)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")

    def construct(self, x):
        # Max-pooling ReLU outputs (>= 0) with a zero border equals the usual -inf padding; built
        # by concatenation because MindSpore 2.8 exports neither padded MaxPool nor Pad to ONNX.
        x = self.relu(self.bn1(self.conv1(x)))
        b, c, h, w = x.shape
        rows = ops.zeros((b, c, 1, w), x.dtype)
        x = ops.cat((rows, x, rows), axis=2)
        cols = ops.zeros((b, c, h + 2, 1), x.dtype)
        return self.maxpool(ops.cat((cols, x, cols), axis=3))


class Trunk(nn.Cell):
    """layer1..layer4: (B, C_stem, h, w) -> (B, out_channels, h/8, w/8) with last stride 1."""

    def __init__(
        self, in_channels: int, layers: Sequence[int], widths: Sequence[int], last_stride: int
    ):
        super().__init__()
        strides = (1, 2, 2, last_stride)
        channels = in_channels
        stages = []
        for blocks, width, stride in zip(layers, widths, strides):
            stage = []
            for i in range(blocks):
                stage.append(Bottleneck(channels, width, stride if i == 0 else 1))
                channels = width * EXPANSION
            stages.append(nn.SequentialCell(stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def construct(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet:
    """Recipe for a ResNet split into stem and trunk; the DDAG network asks it for the pieces.

    Args:
        layers: bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3).
        widths: inner width of each stage (ResNet-50: 64, 128, 256, 512); outputs are 4x wider.
        stem_channels: output channels of the 7x7 stem convolution (ResNet-50: 64).
        last_stride: stride of layer4; DDAG uses 1 so a 288x144 input keeps an 18x9 map.
        pretrained: ImageNet ResNet checkpoint (MindSpore model-zoo naming: conv1.*, bn1.*,
            layer1.* ...) loaded into every stem and trunk this recipe makes.
        strict: a pretrained checkpoint that misses or mis-shapes a parameter is an error.
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_channels: int = 64,
        last_stride: int = 1,
        pretrained: Optional[str] = None,
        strict: bool = True,
    ):
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"layers and widths need 4 stages, got {list(layers)}, {list(widths)}")
        self.layers = tuple(layers)
        self.widths = tuple(widths)
        self.stem_channels = stem_channels
        self.last_stride = last_stride
        self.pretrained, self.strict = pretrained, strict
        self._weights = None

    @property
    def out_channels(self) -> int:
        """Channels of the trunk's output feature map."""
        return self.widths[-1] * EXPANSION

    def make_stem(self) -> Stem:
        """A new modality stem (each call gives independent weights)."""
        return self._load(Stem(self.stem_channels), ("conv1.", "bn1."))

    def make_trunk(self) -> Trunk:
        """The shared layers 1-4."""
        trunk = Trunk(self.stem_channels, self.layers, self.widths, self.last_stride)
        return self._load(trunk, ("layer",))

    def _load(self, cell, prefixes):
        if not self.pretrained:
            return cell
        if self._weights is None:
            params, _ = read_checkpoint(self.pretrained)
            self._weights = {backbone_name(k): v for k, v in params.items() if backbone_name(k)}
        part = {k: v for k, v in self._weights.items() if k.startswith(prefixes)}
        report = load_into(cell, part, strict=self.strict)
        log.info("pretrained %s -> %s: %s", self.pretrained, type(cell).__name__, report.summary())
        return cell
