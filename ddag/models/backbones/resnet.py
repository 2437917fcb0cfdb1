"""ResNet backbones split the way DDAG needs them: a modality-specific stem and a shared trunk.

DDAG paper section 3.1 (two-stream ResNet-50, last stride 1); reference: mangye16/DDAG
`model_main.py` (visible_module / thermal_module / base_resnet). ResNet-18/34 use basic blocks,
ResNet-50/101/152 bottlenecks (He et al. 2016). Block and parameter names follow the MindSpore
model-zoo ResNet (conv1, bn1, ..., down_sample_layer), so ImageNet weights of any origin map onto
ours by name (`ddag.checkpoints` translates torchvision/timm names; `weight_part` says where an
ImageNet entry belongs). The recipe reads no file: initial weights are loaded by the task.
"""

import re
from typing import Callable, Dict, Optional, Sequence, Tuple

from mindspore import Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import HeNormal

from ddag.models.attention.non_local import NonLocalBlock

EXPANSION = 4
BLOCKS = ("bottleneck", "basic")
# Which ImageNet ResNet entries belong to a stem and which to the trunk (layer1-4).
STEM_PREFIXES = ("conv1.", "bn1.")
TRUNK_PREFIXES = ("layer",)
_IMAGENET_NAME = re.compile(r"(?:^|\.)((?:conv1|bn1|layer[1-4])\..*)$")


def imagenet_name(name: str) -> Optional[str]:
    """`conv1.weight`, `layer2.0.bn1.gamma`, ... of an ImageNet ResNet checkpoint entry, whatever
    wrapper prefix it was saved with (model zoo: none); None for heads such as end_point.*."""
    match = _IMAGENET_NAME.search(name)
    return match.group(1) if match else None


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


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.SequentialCell:
    """The shortcut of a block that changes width or resolution: 1x1 convolution + BatchNorm."""
    return nn.SequentialCell(
        _conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels)
    )


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (strided) -> 1x1 residual block with expansion 4.

    `first_norm` builds the norm after the first convolution (IBN-a puts instance-batch
    normalisation there); BatchNorm by default.
    """

    expansion = EXPANSION

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        first_norm: Callable[[int], nn.Cell] = nn.BatchNorm2d,
    ):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = _conv(in_channels, width, 1)
        self.bn1 = first_norm(width)
        self.conv2 = _conv(width, width, 3, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv(width, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.has_down_sample = stride != 1 or in_channels != out_channels
        if self.has_down_sample:
            self.down_sample_layer = _projection(in_channels, out_channels, stride)

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.has_down_sample:
            identity = self.down_sample_layer(x)
        return self.relu(out + identity)


class BasicBlock(nn.Cell):
    """3x3 (strided) -> 3x3 residual block without expansion (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        first_norm: Callable[[int], nn.Cell] = nn.BatchNorm2d,
    ):
        super().__init__()
        self.conv1 = _conv(in_channels, width, 3, stride)
        self.bn1 = first_norm(width)
        self.conv2 = _conv(width, width, 3)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.has_down_sample = stride != 1 or in_channels != width
        if self.has_down_sample:
            self.down_sample_layer = _projection(in_channels, width, stride)

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.has_down_sample:
            identity = self.down_sample_layer(x)
        return self.relu(out + identity)


BLOCK_TYPES = {"bottleneck": Bottleneck, "basic": BasicBlock}


class Stem(nn.Cell):
    """conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2: (B, 3, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(3, channels, 7, 2)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")
        # Export with a dynamic batch: the zero border is made from the input (a gathered row or
        # column times 0, exactly 0 for ReLU outputs), not as a constant of the traced batch.
        self.dynamic_batch = False

    def _border(self, x, axis: int):
        if self.dynamic_batch:
            return ops.gather(x, Tensor([0], mstype.int32), axis) * 0
        b, c, h, w = x.shape
        return ops.zeros((b, c, 1, w) if axis == 2 else (b, c, h, 1), x.dtype)

    def construct(self, x):
        # Max-pooling ReLU outputs (>= 0) with a zero border equals the usual -inf padding; built
        # by concatenation because MindSpore 2.8 exports neither padded MaxPool nor Pad to ONNX.
        x = self.relu(self.bn1(self.conv1(x)))
        rows = self._border(x, 2)
        x = ops.cat((rows, x, rows), axis=2)
        cols = self._border(x, 3)
        return self.maxpool(ops.cat((cols, x, cols), axis=3))


class Trunk(nn.Cell):
    """layer1..layer4: (B, C_stem, h, w) -> (B, out_channels, h/8, w/8) with last stride 1.

    Args:
        in_channels: channels of the stem output.
        layers, widths, last_stride, block, non_local, non_local_channels, num_stages: see
            ResNet.
        first_norms: per stage, the norm factory after each block's first convolution.

    `stage(index, x)` runs one stage (1-based), for networks that act between stages (DEEN's
    multi-stage aggregation and embedding expansion).

    Non-local blocks live in `nl1` .. `nl4` beside `layer1` .. `layer4`, so the blocks keep the
    names of a plain ResNet and ImageNet weights still load by name.
    """

    def __init__(
        self,
        in_channels: int,
        layers: Sequence[int],
        widths: Sequence[int],
        last_stride: int,
        block: str = "bottleneck",
        first_norms: Optional[Sequence[Callable[[int], nn.Cell]]] = None,
        non_local: Sequence[int] = (0, 0, 0, 0),
        non_local_channels: int = 1,
        num_stages: int = 4,
    ):
        super().__init__()
        block_type = BLOCK_TYPES[block]
        strides = (1, 2, 2, last_stride)
        first_norms = first_norms or (nn.BatchNorm2d,) * 4
        channels = in_channels
        stages, extras, starts = [], [], []
        built = zip(layers[:num_stages], widths, strides)
        for index, (blocks, width, stride) in enumerate(built):
            stage = []
            for i in range(blocks):
                norm = first_norms[index]
                stage.append(block_type(channels, width, stride if i == 0 else 1, norm))
                channels = width * block_type.expansion
            stages.append(nn.SequentialCell(stage))
            count = non_local[index]
            if not 0 <= count <= blocks:
                raise ValueError(
                    f"non_local: stage {index + 1} has {blocks} blocks, cannot follow {count}"
                )
            extras.append(
                nn.CellList([NonLocalBlock(channels, non_local_channels) for _ in range(count)])
            )
            starts.append(blocks - count if count else -1)
        self.layer1, self.layer2, self.layer3 = stages[:3]
        self.nl1, self.nl2, self.nl3 = extras[:3]
        if num_stages == 4:
            self.layer4, self.nl4 = stages[3], extras[3]
        self.num_stages = num_stages
        self.non_local_start = tuple(starts)  # first block followed by a non-local, -1: none

    def _stage(self, blocks, extra, start: int, x):
        if start < 0:
            return blocks(x)
        for i in range(len(blocks)):
            x = blocks[i](x)
            if i >= start:
                x = extra[i - start](x)
        return x

    def stage(self, index: int, x):
        """Stage `index` (1-based, a constant) with its non-local blocks."""
        starts = self.non_local_start
        if index == 1:
            return self._stage(self.layer1, self.nl1, starts[0], x)
        if index == 2:
            return self._stage(self.layer2, self.nl2, starts[1], x)
        if index == 3:
            return self._stage(self.layer3, self.nl3, starts[2], x)
        return self._stage(self.layer4, self.nl4, starts[3], x)

    def construct(self, x):
        x = self.stage(1, x)
        x = self.stage(2, x)
        x = self.stage(3, x)
        if self.num_stages == 4:
            x = self.stage(4, x)
        return x


# Bounds on what a recipe may allocate (ResNet-152: 36 blocks in a stage, 512 wide).
MAX_BLOCKS = 64
MAX_WIDTH = 8192


class ResNet:
    """Recipe for a ResNet split into stem and trunk; the DDAG network asks it for the pieces.

    Args:
        layers: blocks per stage (ResNet-50: 3, 4, 6, 3; ResNet-18: 2, 2, 2, 2).
        widths: inner width of each stage (64, 128, 256, 512); bottleneck outputs are 4x wider.
        stem_channels: output channels of the 7x7 stem convolution (ResNet-50: 64).
        last_stride: stride of layer4; DDAG uses 1 so a 288x144 input keeps an 18x9 map.
        block: "bottleneck" (ResNet-50/101/152) or "basic" (ResNet-18/34).
        non_local: non-local blocks after the last blocks of each stage (AGW: [0, 2, 3, 0]).
        non_local_channels: inner channels of each non-local block (AGW's code: 1).
        num_stages: 4, or 3 to drop layer4 (DEEN on RegDB: the feature is layer3's, 1024 wide).
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_channels: int = 64,
        last_stride: int = 1,
        block: str = "bottleneck",
        non_local: Sequence[int] = (0, 0, 0, 0),
        non_local_channels: int = 1,
        num_stages: int = 4,
    ):
        if num_stages not in (3, 4):
            raise ValueError(f"num_stages must be 3 or 4, got {num_stages}")
        if len(layers) != 4 or len(widths) != 4 or len(non_local) != 4:
            raise ValueError(
                f"layers, widths and non_local need 4 stages, got {list(layers)}, "
                f"{list(widths)}, {list(non_local)}"
            )
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        if not all(1 <= n <= MAX_BLOCKS for n in layers):
            raise ValueError(
                f"layers must hold 1..{MAX_BLOCKS} blocks per stage, got {list(layers)}"
            )
        if not all(1 <= w <= MAX_WIDTH for w in (*widths, stem_channels, non_local_channels)):
            raise ValueError(
                f"widths, stem_channels and non_local_channels must be in 1..{MAX_WIDTH}, got "
                f"{list(widths)}, {stem_channels}, {non_local_channels}"
            )
        if not all(0 <= k <= n for k, n in zip(non_local, layers)):
            raise ValueError(
                f"non_local {list(non_local)}: non-local blocks cannot follow more blocks than "
                f"a stage has ({list(layers)})"
            )
        self.layers = tuple(layers)
        self.widths = tuple(widths)
        self.stem_channels = stem_channels
        self.last_stride = last_stride
        self.block = block
        self.non_local = tuple(non_local)
        self.non_local_channels = non_local_channels
        self.num_stages = num_stages

    @property
    def out_channels(self) -> int:
        """Channels of the trunk's output feature map."""
        return self.stage_channels()[-1][1]

    def stage_channels(self) -> Tuple[Tuple[int, int, int], ...]:
        """(input channels, output channels, stride) of each stage the trunk builds."""
        expansion = BLOCK_TYPES[self.block].expansion
        strides = (1, 2, 2, self.last_stride)
        channels, stages = self.stem_channels, []
        for width, stride in zip(self.widths[: self.num_stages], strides):
            stages.append((channels, width * expansion, stride))
            channels = width * expansion
        return tuple(stages)

    def first_norms(self) -> Tuple[Callable[[int], nn.Cell], ...]:
        """Norm after each block's first convolution, per stage (BatchNorm; IBN-a overrides)."""
        return (nn.BatchNorm2d,) * 4

    def make_stem(self) -> Stem:
        """A new modality stem (each call gives independent weights)."""
        return Stem(self.stem_channels)

    def make_trunk(self) -> Trunk:
        """The shared layers 1-4 (with their non-local blocks)."""
        return Trunk(
            self.stem_channels,
            self.layers,
            self.widths,
            self.last_stride,
            self.block,
            self.first_norms(),
            self.non_local,
            self.non_local_channels,
            self.num_stages,
        )

    def stem_shapes(self) -> Dict[str, tuple]:
        """Shapes of the stem tensors that witness `stem_channels` (checked before loading)."""
        return {"conv1.weight": (self.stem_channels, 3, 7, 7)}

    def trunk_shapes(self) -> Dict[str, tuple]:
        """Shapes of the trunk tensors that witness every block and width the recipe builds, so a
        spec read from a file cannot allocate more than the file holds."""
        shapes, channels = {}, self.stem_channels
        expansion = BLOCK_TYPES[self.block].expansion
        built = zip(self.layers[: self.num_stages], self.widths)
        for stage, (blocks, width) in enumerate(built, start=1):
            for index in range(blocks):
                prefix = f"layer{stage}.{index}."
                if self.block == "bottleneck":
                    shapes[prefix + "conv1.weight"] = (width, channels, 1, 1)
                    shapes[prefix + "conv3.weight"] = (width * expansion, width, 1, 1)
                else:
                    shapes[prefix + "conv1.weight"] = (width, channels, 3, 3)
                shapes[prefix + "conv2.weight"] = (width, width, 3, 3)
                channels = width * expansion
            for index in range(self.non_local[stage - 1]):
                inner = (self.non_local_channels, channels, 1, 1)
                shapes[f"nl{stage}.{index}.g.weight"] = inner
        return shapes

    def weight_part(self, name: str) -> Optional[Tuple[str, str]]:
        """Where an ImageNet ResNet entry belongs: ("stem", `conv1.weight`), ("trunk",
        `layer1.0.conv1.weight`), or None for what no backbone part uses (fc, ...)."""
        local = imagenet_name(name)
        if local is None or int(local.startswith("layer") and local[5]) > self.num_stages:
            return None  # not a backbone entry, or a stage this recipe does not build
        return ("stem" if local.startswith(STEM_PREFIXES) else "trunk", local)

    # Trunk parameters an ImageNet file does not hold: non-local blocks start from their init.
    optional_trunk_prefixes = ("nl",)
