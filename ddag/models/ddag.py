"""DDAG network: modality stems -> shared trunk -> BN neck / classifier, IWPA and CGSA branches.

DDAG paper section 3 (figure 2); reference: mangye16/DDAG `model_main.py` (class embed_net) and,
for the `shared` stem layout, mindspore-ai/models research/cv/DDAG `src/models/ddag.py`.
"""

from typing import Callable, Dict, Optional, Tuple

from mindspore import nn, ops
from mindspore.common import dtype as mstype

from ddag.models.attention.iwpa import WeightedPartAttention
from ddag.models.backbones.resnet import Stem
from ddag.models.heads import batchnorm_inference, frozen_shift_batchnorm, identity_classifier

STEM_LAYOUTS = ("two_stream", "shared")
POOLINGS = ("avg", "gem")
EXPORT_FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx"}  # task=export: format -> file suffix
VISIBLE, THERMAL = 1, 2


MAX_CLASSES = 1_000_000  # training identities; the classifier is (classes x 2048)


class DDAG(nn.Cell):
    """Dynamic dual-attentive aggregation network.

    Args:
        backbone: a backbone recipe with `make_stem()`, `make_trunk()` and `out_channels`.
        num_classes: number of training identities.
        part_attention: factory `(in_channels) -> Cell` for the IWPA branch, or None.
        graph_attention: factory `(in_features, num_classes, low_dim) -> Cell` for CGSA, or None.
        stems: "two_stream" (paper: a visible and a thermal stem before the shared layers) or
            "shared" (the MindSpore port: both modalities through one stem).
        low_dim: width of each graph-attention head (paper 512).
        pooling: global pooling of the trunk's map: "avg" (DDAG) or "gem" (generalised mean,
            AGW: `(mean(x^p) + 1e-12)^(1/p)` with a fixed `gem_p`).
        gem_p: the exponent of GeM pooling (AGW: 3).

    The backbone recipe's contract: `make_stem()`, `make_trunk()`, `out_channels`, and for loading
    from files `stem_shapes()` / `trunk_shapes()` (tensors that witness what it allocates) and
    `weight_part(name)` with `optional_trunk_prefixes` (where ImageNet weights belong).

    In training, `construct(visible, thermal, adjacency, noise)` returns a tuple whose entries are
    named by `output_names`: pooled feature, BN feature, logits, [part logits], [graph log-probs].
    `noise` is the uniform dropout noise of the graph branch (length `noise_size(2B)`).
    """

    def __init__(
        self,
        backbone,
        num_classes: int,
        part_attention: Optional[Callable] = None,
        graph_attention: Optional[Callable] = None,
        stems: str = "two_stream",
        low_dim: int = 512,
        pooling: str = "avg",
        gem_p: float = 3.0,
    ):
        super().__init__()
        if stems not in STEM_LAYOUTS:
            raise ValueError(f"stems must be one of {STEM_LAYOUTS}, got {stems!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not gem_p >= 1.0:
            raise ValueError(f"gem_p must be >= 1, got {gem_p}")
        if not 1 <= num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes}")
        self.backbone_recipe = backbone
        self.gem = pooling == "gem"
        self.gem_p = float(gem_p)
        self.two_stream = stems == "two_stream"
        if self.two_stream:
            self.visible_stem = backbone.make_stem()
            self.thermal_stem = backbone.make_stem()
        else:
            self.shared_stem = backbone.make_stem()
        self.trunk = backbone.make_trunk()
        channels = backbone.out_channels
        self.out_channels = channels
        self.bottleneck = frozen_shift_batchnorm(channels)
        self.dynamic_batch = False  # inference graphs exported for any batch size
        self.classifier = identity_classifier(channels, num_classes)
        self.has_part_attention = part_attention is not None
        self.has_graph_attention = graph_attention is not None
        if self.has_part_attention:
            self.part_attention = part_attention(in_channels=channels)
        if self.has_graph_attention:
            self.graph_attention = graph_attention(
                in_features=channels, num_classes=num_classes, low_dim=low_dim
            )
        names = ["pool", "feat", "logits"]
        if self.has_part_attention:
            names.append("logits_att")
        if self.has_graph_attention:
            names.append("graph_log_probs")
        self.output_names = tuple(names)

    @staticmethod
    def stem_prefixes(stems: str) -> Tuple[str, ...]:
        """Parameter-name prefixes of the network's stems for a stem layout."""
        return ("visible_stem.", "thermal_stem.") if stems == "two_stream" else ("shared_stem.",)

    @classmethod
    def expected_shapes(
        cls,
        backbone,
        num_classes: int,
        part_attention: Optional[Callable] = None,
        graph_attention: Optional[Callable] = None,
        stems: str = "two_stream",
        low_dim: int = 512,
        **_,
    ) -> Dict[str, tuple]:
        """Shapes of the tensors that witness every argument deciding what this network
        allocates, from its (cheap) backbone recipe and attention factories: a spec read from a
        file is checked against the file's tensors with these before anything is built."""
        shapes = {}
        for prefix in cls.stem_prefixes(stems):
            shapes.update(_prefixed(backbone.stem_shapes(), prefix))
        shapes.update(_prefixed(backbone.trunk_shapes(), "trunk."))
        channels = backbone.out_channels
        shapes["classifier.weight"] = (num_classes, channels)
        if part_attention is not None:
            part = part_attention.func.expected_shapes(
                in_channels=channels, **part_attention.keywords
            )
            shapes.update(_prefixed(part, "part_attention."))
        if graph_attention is not None:
            graph = graph_attention.func.expected_shapes(
                in_features=channels,
                num_classes=num_classes,
                low_dim=low_dim,
                **graph_attention.keywords,
            )
            shapes.update(_prefixed(graph, "graph_attention."))
        return shapes

    def backbone_weights(self, arrays: Dict[str, object]) -> Tuple[Dict[str, object], tuple, tuple]:
        """(ImageNet backbone `arrays` under this network's parameter names, prefixes of the
        parameters they are to cover, prefixes among those they need not cover): every stem gets
        the stem's entries, the trunk the trunk's. Non-local blocks are no part of an ImageNet
        file and keep their initial values."""
        recipe = self.backbone_recipe
        stems = self.stem_prefixes("two_stream" if self.two_stream else "shared")
        targets = {"stem": stems, "trunk": ("trunk.",)}
        mapped = {}
        for name, value in arrays.items():
            part = recipe.weight_part(name)
            if part is not None:
                for prefix in targets[part[0]]:
                    mapped[prefix + part[1]] = value
        optional = tuple(f"trunk.{p}" for p in recipe.optional_trunk_prefixes)
        return mapped, stems + ("trunk.",), optional

    def use_mixed_precision(self, keep_batchnorm_fp32: bool = True) -> None:
        """Run the stems and the trunk in float16 (BatchNorm in float32 unless O3-style).

        The backbone holds nearly all the compute; the feature map returns to float32 before
        pooling, so the heads, both attention branches and the losses stay in float32.
        Parameter names do not change (a wrapper cell would rename them).
        """
        for name in ("visible_stem", "thermal_stem", "shared_stem", "trunk"):
            cell = getattr(self, name, None)
            if cell is None:
                continue
            cell.to_float(mstype.float16)
            if keep_batchnorm_fp32:
                for _, sub in cell.cells_and_names():
                    if isinstance(sub, nn.BatchNorm2d):
                        sub.to_float(mstype.float32)

    def noise_size(self, num_samples: int) -> int:
        """Length of the dropout noise a training forward over `num_samples` images needs."""
        if self.has_graph_attention:
            return self.graph_attention.noise_size(num_samples)
        return 1

    def _trunk_features(self, feature_map):
        feature_map = feature_map.astype(mstype.float32)
        if self.gem:
            pooled = ((feature_map**self.gem_p).mean(axis=(2, 3)) + 1e-12) ** (1.0 / self.gem_p)
        else:
            pooled = feature_map.mean(axis=(2, 3))
        if self.dynamic_batch:
            return pooled, batchnorm_inference(self.bottleneck, pooled)
        return pooled, self.bottleneck(pooled)

    def construct(self, visible, thermal, adjacency, noise):
        """Training forward of a paired batch, (B, 3, H, W) each; adjacency (2B, 2B)."""
        if self.two_stream:
            x = ops.cat((self.visible_stem(visible), self.thermal_stem(thermal)), axis=0)
        else:
            x = self.shared_stem(ops.cat((visible, thermal), axis=0))
        feature_map = self.trunk(x)
        pooled, feat = self._trunk_features(feature_map)
        outputs = (pooled, feat, self.classifier(feat))
        if self.has_part_attention:
            feature_map = feature_map.astype(mstype.float32)
            outputs = outputs + (self.classifier(self.part_attention(feature_map, feat)),)
        if self.has_graph_attention:
            outputs = outputs + (self.graph_attention(pooled, adjacency, noise),)
        return outputs

    def _stem(self, images, modality: int):
        """The stem of `modality` (VISIBLE 1, THERMAL 2), or the shared one."""
        if not self.two_stream:
            return self.shared_stem(images)
        if modality == VISIBLE:
            return self.visible_stem(images)
        return self.thermal_stem(images)

    def feature_map(self, images, modality: int):
        """(B, 3, H, W) images of one modality -> the trunk's last (B, C, h, w) feature map."""
        return self.trunk(self._stem(images, modality)).astype(mstype.float32)

    def pooled_features(self, feature_map):
        """The pooled (B, C) feature of a feature map: the graph branch's input."""
        return self._trunk_features(feature_map)[0]

    def embed(self, images, modality: int):
        """Test-time features of one modality: (B, 3, H, W) -> (FC, FC_att), each (B, C), L2-normed.

        Without part attention FC_att equals FC. `modality` is VISIBLE (1) or THERMAL (2).
        """
        return self.test_features(self._stem(images, modality))

    def test_features(self, stem_output):
        """Stem output -> (FC, FC_att), L2-normalised."""
        feature_map = self.trunk(stem_output)
        _, feat = self._trunk_features(feature_map)
        feat_att = feat
        if self.has_part_attention:
            feat_att = self.part_attention(feature_map.astype(mstype.float32), feat)
        return _l2_normalise(feat), _l2_normalise(feat_att)


class EmbeddingNet(nn.Cell):
    """Inference graph for one modality: images (B, 3, H, W) -> (FC, FC_att)."""

    def __init__(self, network: DDAG, modality: int):
        super().__init__(auto_prefix=False)  # keep the network's parameter names
        if modality not in (VISIBLE, THERMAL):
            raise ValueError(f"modality must be {VISIBLE} (visible) or {THERMAL} (thermal)")
        self.network = network
        self.modality = modality

    def construct(self, images):
        return self.network.embed(images, self.modality)


class ModalityEmbeddingNet(nn.Cell):
    """Inference graph with the modality as an input, for export.

    `construct(images (B, 3, H, W), modality (1,) int32: 1 visible / 2 thermal) -> (FC, FC_att)`.
    With two stems both run and the modality picks one: the stem is ~2 % of the network's work,
    and one exported file then serves both modalities.
    """

    def __init__(self, network: DDAG, dynamic_batch: bool = False):
        super().__init__(auto_prefix=False)
        self.network = network
        if dynamic_batch:  # no part of the graph fixed to the traced batch size
            for _, cell in network.cells_and_names():
                if isinstance(cell, (DDAG, Stem, WeightedPartAttention)):
                    cell.dynamic_batch = True

    def construct(self, images, modality):
        net = self.network
        if net.two_stream:
            visible = net.visible_stem(images)
            thermal = net.thermal_stem(images)
            x = ops.where(modality.reshape(1, 1, 1, 1) == VISIBLE, visible, thermal)
        else:
            x = net.shared_stem(images)
        return net.test_features(x)


def _prefixed(shapes: Dict[str, tuple], prefix: str) -> Dict[str, tuple]:
    return {prefix + name: tuple(shape) for name, shape in shapes.items()}


def _l2_normalise(x):
    return x / ops.maximum(ops.norm(x, dim=1, keepdim=True), 1e-12)
