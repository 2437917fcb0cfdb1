"""Vision transformer backbones: ViT-B/S/Ti with an overlapping-patch option (TransReID, PMT).

Dosovitskiy et al., ICLR 2021; references: huggingface/pytorch-image-models
`timm/models/vision_transformer.py` (VisionTransformer: the parameter names ImageNet weights
carry) and hulu88/PMT `model/vision_transformer.py` (ViT: a patch embedding of stride 12 that
overlaps, the position embedding resized bilinearly to the input's grid, LayerNorm eps 1e-5).

Split as DDAG needs it: the stem turns images into tokens (patch embedding, class token,
position embedding: one per modality with `stems=two_stream`, one for both with `shared`, as
PMT has it); the trunk runs the blocks and the final norm and returns the class token (the
feature of BN-neck heads) and the patch tokens as a (B, C, h, w) map (what part attention and
activation maps read). Parameter names are timm's, so ImageNet weights load by name; `weight_part`
and `adapt_weight` say where an entry belongs and resize a position embedding to the grid.
"""

from typing import Dict, Optional, Tuple

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import TruncatedNormal, initializer

MAX_DEPTH, MAX_DIM, MAX_TOKENS = 64, 4096, 16384
STEM_NAMES = ("patch_embed.", "cls_token", "pos_embed")
TRUNK_NAMES = ("blocks.", "norm.")


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis with timm's parameter names (`weight`, `bias`), on
    MindSpore's fused kernel (2.5x faster forward and backward on the CPU than the same formula
    written out, whose `Pow` alone took an eighth of a ViT step).

    `keeps_float32`: under mixed precision it computes in float32, as torch's autocast runs
    layer_norm (`DDAG.use_mixed_precision`)."""

    keeps_float32 = True

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(Tensor(np.ones(dim, np.float32)), name="weight")
        self.bias = Parameter(Tensor(np.zeros(dim, np.float32)), name="bias")
        self.normalise = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        return self.normalise(x, self.weight, self.bias)[0]


class Linear(nn.Cell):
    """`x W^T + b` over the last axis of a (B, N, C) input, with nn.Dense's parameter names
    (`weight` (out, in), `bias`), truncated-normal(0.02) weights and zero biases as timm sets
    them. A matmul plus a broadcast add: on the CPU its backward is 1.5x faster than
    nn.Dense's, whose BiasAddGrad over B*N rows took longer than the matmuls."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = Parameter(
            initializer(TruncatedNormal(0.02), (out_features, in_features)), name="weight"
        )
        self.has_bias = bias
        if bias:
            self.bias = Parameter(Tensor(np.zeros(out_features, np.float32)), name="bias")
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x):
        shape = x.shape
        y = self.matmul(x.reshape(-1, shape[-1]), self.weight)
        if self.has_bias:
            y = y + self.bias
        return y.reshape(shape[:-1] + (y.shape[-1],))


class GELU(nn.Cell):
    """Exact GELU, x Phi(x) with the error function (timm's nn.GELU), with its derivative
    Phi(x) + x phi(x) written out: MindSpore's own GELU and Erf gradients square through the
    CPU's slow Pow kernel (a twentieth of a ViT training step)."""

    def construct(self, x):
        return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))

    def bprop(self, x, out, dout):
        cdf = 0.5 * (1.0 + ops.erf(x * 0.7071067811865476))
        pdf = 0.3989422804014327 * ops.exp(-0.5 * x * x)
        return (dout * (cdf + x * pdf),)


class Attention(nn.Cell):
    """Multi-head self-attention: qkv projection, softmax(q k^T / sqrt(d)) v, output projection."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = Linear(dim, dim * 3, qkv_bias)
        self.proj = Linear(dim, dim)
        self.attn_drop = nn.Dropout(p=attn_drop)
        self.proj_drop = nn.Dropout(p=proj_drop)

    def construct(self, x):
        b, n, c = x.shape
        # Three slices of the last axis, then heads: one split (indexing a (3, B, H, N, d)
        # transpose cost three times as much on the CPU).
        q, k, v = (
            t.reshape(b, n, self.heads, c // self.heads).transpose(0, 2, 1, 3)
            for t in ops.split(self.qkv(x), c, axis=-1)
        )
        scores = ops.matmul(q, k.swapaxes(-2, -1)) * self.scale
        # float32 under mixed precision, as torch's autocast runs softmax (no-op otherwise).
        attn = ops.softmax(scores.astype(mstype.float32), axis=-1).astype(scores.dtype)
        x = ops.matmul(self.attn_drop(attn), v).transpose(0, 2, 1, 3).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Cell):
    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1, self.fc2 = Linear(dim, hidden), Linear(hidden, dim)
        self.act = GELU()
        self.drop = nn.Dropout(p=drop)

    def construct(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Cell):
    """Stochastic depth: drop a sample's whole residual branch with `rate` in training."""

    def __init__(self, rate: float):
        super().__init__()
        self.keep = 1.0 - rate

    def construct(self, x):
        if not self.training or self.keep >= 1.0:
            return x
        mask = ops.floor(self.keep + ops.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype))
        return x / self.keep * mask


class Block(nn.Cell):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim, heads, mlp_ratio, qkv_bias, eps, drop, attn_drop, drop_path):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps)
        self.attn = Attention(dim, heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm(dim, eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def construct(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Cell):
    def __init__(self, patch: int, stride: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=stride, pad_mode="valid", has_bias=True)

    def construct(self, x):
        x = self.proj(x)
        return x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 2, 1)


class TokenStem(nn.Cell):
    """Images (B, 3, H, W) -> tokens (B, 1 + h*w, C): patches, class token, position embedding,
    and with `modality_embedding` TransReID's side-information embedding with the modality as
    the camera: `scale x sie_embed[modality]` added to every token (modality 0 visible, 1
    thermal, one index per image)."""

    def __init__(
        self,
        patch: int,
        stride: int,
        dim: int,
        tokens: int,
        drop: float,
        modality_embedding: bool = False,
        modality_scale: float = 3.0,
    ):
        super().__init__()
        self.modality_embedding = modality_embedding
        self.modality_scale = float(modality_scale)
        if modality_embedding:
            self.sie_embed = Parameter(
                initializer(TruncatedNormal(0.02), (2, 1, dim)), name="sie_embed"
            )
        self.patch_embed = PatchEmbed(patch, stride, dim)
        self.cls_token = Parameter(
            initializer(TruncatedNormal(0.02), (1, 1, dim)), name="cls_token"
        )
        self.pos_embed = Parameter(
            initializer(TruncatedNormal(0.02), (1, tokens + 1, dim)), name="pos_embed"
        )
        self.pos_drop = nn.Dropout(p=drop)

    def construct(self, x, modality=None):
        x = self.patch_embed(x)
        cls = ops.broadcast_to(self.cls_token, (x.shape[0], 1, x.shape[2]))
        tokens = ops.cat((cls, x), axis=1) + self.pos_embed
        if self.modality_embedding:
            tokens = tokens + self.modality_scale * ops.gather(self.sie_embed, modality, 0)
        return self.pos_drop(tokens)


class TokenTrunk(nn.Cell):
    """Tokens -> (class token (B, C), patch tokens as a (B, C, h, w) map), after the final norm."""

    def __init__(self, blocks, dim: int, eps: float, grid: Tuple[int, int]):
        super().__init__()
        self.blocks = nn.CellList(blocks)
        self.norm = LayerNorm(dim, eps)
        self.grid = grid

    def construct(self, x):
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        patches = x[:, 1:].transpose(0, 2, 1)
        return x[:, 0], patches.reshape(x.shape[0], x.shape[2], self.grid[0], self.grid[1])


class VisionTransformer:
    """Recipe for a ViT split into a token stem and a transformer trunk.

    Args:
        embed_dim, depth, num_heads, mlp_ratio: the architecture (ViT-B/16: 768, 12, 12, 4).
        patch_size: side of each patch (16).
        stride: patch stride: 16 plain (timm), 12 overlapping (TransReID, PMT).
        height, width: the input size; the position embedding has one entry per patch of it.
        qkv_bias: bias on the qkv projection (both references: true).
        layer_norm_eps: timm 1e-6, PMT 1e-5 (torch's default).
        drop_rate, attn_drop_rate, drop_path_rate: dropout after embeddings / projections and
            MLPs, on attention weights, and stochastic depth rising linearly to this rate.
        modality_embedding: TransReID's side-information embedding (`sie_embed`, 2 x C) with
            the modality as the camera, added to the tokens; off as PMT has it. Needs
            `stems=shared` (two stems already give each modality its own embeddings).
        modality_scale: its factor (TransReID's SIE_COE, 3.0).
    """

    token_output = True  # the trunk returns (class token, patch-token map)

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        stride: int = 16,
        height: int = 256,
        width: int = 128,
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        modality_embedding: bool = False,
        modality_scale: float = 3.0,
    ):
        if not (1 <= depth <= MAX_DEPTH and 1 <= embed_dim <= MAX_DIM and num_heads >= 1):
            raise ValueError(f"depth 1..{MAX_DEPTH}, embed_dim 1..{MAX_DIM}, num_heads >= 1")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
        if not (1 <= stride <= patch_size <= min(height, width)):
            raise ValueError(
                f"patch_size {patch_size} and stride {stride} must fit the {height}x{width} input "
                "(1 <= stride <= patch_size <= the image's shorter side)"
            )
        if not all(0.0 <= r < 1.0 for r in (drop_rate, attn_drop_rate, drop_path_rate)):
            raise ValueError("dropout and drop-path rates must be in [0, 1)")
        if not 0.5 <= mlp_ratio <= 16:
            raise ValueError(f"mlp_ratio {mlp_ratio} must be in 0.5..16")
        self.embed_dim, self.depth, self.num_heads, self.mlp_ratio = (
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
        )
        self.patch_size, self.stride, self.qkv_bias, self.eps = (
            patch_size,
            stride,
            qkv_bias,
            layer_norm_eps,
        )
        self.grid = ((height - patch_size) // stride + 1, (width - patch_size) // stride + 1)
        if self.grid[0] * self.grid[1] > MAX_TOKENS:
            raise ValueError(f"a {self.grid} patch grid is more than {MAX_TOKENS} tokens")
        self.rates = (drop_rate, attn_drop_rate, drop_path_rate)
        self.modality_embedding, self.modality_scale = bool(modality_embedding), modality_scale
        # Not in ImageNet files: a new network keeps its initial values.
        self.optional_stem_names = ("sie_embed",) if modality_embedding else ()

    @property
    def out_channels(self) -> int:
        return self.embed_dim

    def make_stem(self) -> TokenStem:
        tokens = self.grid[0] * self.grid[1]
        return TokenStem(
            self.patch_size,
            self.stride,
            self.embed_dim,
            tokens,
            self.rates[0],
            self.modality_embedding,
            self.modality_scale,
        )

    def make_trunk(self) -> TokenTrunk:
        drop, attn_drop, drop_path = self.rates
        paths = np.linspace(0, drop_path, self.depth)  # rising to drop_path_rate at the last block
        blocks = [
            Block(
                self.embed_dim,
                self.num_heads,
                self.mlp_ratio,
                self.qkv_bias,
                self.eps,
                drop,
                attn_drop,
                float(rate),
            )
            for rate in paths
        ]
        return TokenTrunk(blocks, self.embed_dim, self.eps, self.grid)

    def stem_shapes(self) -> Dict[str, tuple]:
        dim, patch = self.embed_dim, self.patch_size
        tokens = self.grid[0] * self.grid[1] + 1
        shapes = {"patch_embed.proj.weight": (dim, 3, patch, patch), "pos_embed": (1, tokens, dim)}
        if self.modality_embedding:
            shapes["sie_embed"] = (2, 1, dim)
        return shapes

    def trunk_shapes(self) -> Dict[str, tuple]:
        dim, hidden = self.embed_dim, int(self.embed_dim * self.mlp_ratio)
        shapes = {}
        for index in range(self.depth):
            shapes[f"blocks.{index}.attn.qkv.weight"] = (3 * dim, dim)
            shapes[f"blocks.{index}.mlp.fc1.weight"] = (hidden, dim)
        return shapes

    def weight_part(self, name: str) -> Optional[Tuple[str, str]]:
        """Where an ImageNet ViT entry (timm names, any wrapper prefix) belongs: the stem's
        patch embedding, class and position embeddings, the trunk's blocks and final norm;
        None for heads (`head.*`, `fc_norm.*`) and blocks this depth does not build."""
        for prefix in ("module.", "base.", "model."):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if name.startswith(STEM_NAMES):
            return "stem", name
        if name.startswith("blocks.") and int(name.split(".")[1]) >= self.depth:
            return None
        return ("trunk", name) if name.startswith(TRUNK_NAMES) else None

    optional_trunk_prefixes = ()

    def adapt_weight(self, name: str, value: np.ndarray) -> np.ndarray:
        """A position embedding of another grid, resized bilinearly to this one (class token
        kept); a square grid is assumed for the source, as PMT and TransReID assume."""
        if name != "pos_embed" or value.shape[1] == self.grid[0] * self.grid[1] + 1:
            return value
        return resize_position_embedding(value, self.grid)


def resize_position_embedding(value: np.ndarray, grid: Tuple[int, int]) -> np.ndarray:
    """(1, 1 + s*s, C) -> (1, 1 + h*w, C): torch's bilinear interpolation with
    align_corners=False (half-pixel centres, no antialiasing) of the s x s grid, class token
    first and unchanged."""
    tokens = value.shape[1] - 1
    side = int(round(tokens**0.5))
    if side * side != tokens or value.ndim != 3 or value.shape[0] != 1:
        raise ValueError(f"a position embedding of shape {value.shape} is not 1 + a square grid")
    source = value[0, 1:].reshape(side, side, -1).astype(np.float64)
    rows = _bilinear_weights(side, grid[0])
    cols = _bilinear_weights(side, grid[1])
    resized = np.einsum("hi,wj,ijc->hwc", rows, cols, source).reshape(1, -1, value.shape[2])
    return np.concatenate([value[:, :1], resized.astype(value.dtype)], axis=1)


def _bilinear_weights(size_in: int, size_out: int) -> np.ndarray:
    """(out, in) matrix of one axis of torch's bilinear resize (align_corners=False)."""
    scale = size_in / size_out
    src = np.maximum((np.arange(size_out) + 0.5) * scale - 0.5, 0.0)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    weights = np.zeros((size_out, size_in))
    weights[np.arange(size_out), low] += 1.0 - frac
    weights[np.arange(size_out), high] += frac
    return weights
