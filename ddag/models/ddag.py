"""DDAG network: modality stems -> shared trunk -> BN neck / classifier, IWPA and CGSA branches.

DDAG paper section 3 (figure 2); reference: mangye16/DDAG `model_main.py` (class embed_net) and,
for the `shared` stem layout, mindspore-ai/models research/cv/DDAG `src/models/ddag.py`.
"""

from typing import Callable, Dict, Optional, Tuple

from mindspore import nn, ops
from mindspore.common import dtype as mstype

from ddag.models.attention.iwpa import WeightedPartAttention
from ddag.models.backbones.resnet import Stem
from ddag.models.expansion.dee import orthogonality, per_image
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
        aggregation: factory `(stage_channels) -> Cell` of blocks acting between trunk stages
            (DEEN's MFA, `ddag.models.aggregation.mfa`), or None.
        expansion: factory `(stage_channels) -> Cell` that expands the batch after a trunk stage
            into `rows_per_image` embeddings per image (DEEN's DEE), or None.
        expansion_pool_weight: with an expansion, the share of the pooled features in FC_att
            (DEEN's test.py: a = 0.1 for pool, 0.9 for the BN feature).

    The backbone recipe's contract: `make_stem()`, `make_trunk()`, `out_channels`, and for loading
    from files `stem_shapes()` / `trunk_shapes()` (tensors that witness what it allocates) and
    `weight_part(name)` with `optional_trunk_prefixes` (where ImageNet weights belong).

    Aggregation and expansion need a recipe that also gives `stage_channels()` (a staged trunk
    with `stage(index, x)`).

    In training, `construct(visible, thermal, adjacency, noise)` returns a tuple whose entries are
    named by `output_names`: pooled feature, BN feature, logits, [part logits], [graph log-probs],
    [orthogonality of the expanded embeddings]. With an expansion every output has
    `rows_per_image` rows per image (the input's embeddings first, then each expansion's), and
    the adjacency and labels cover all of them. `noise` is the uniform dropout noise of the graph
    branch (length `noise_size(2B)`).
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
        aggregation: Optional[Callable] = None,
        expansion: Optional[Callable] = None,
        expansion_pool_weight: float = 0.1,
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
        # A token backbone (ViT) gives (class token, patch-token map): the class token is the
        # global feature, the map what part attention reads.
        self.token_backbone = bool(getattr(backbone, "token_output", False))
        self.gem = pooling == "gem"
        self.gem_p = float(gem_p)
        self.two_stream = stems == "two_stream"
        if self.two_stream:
            self.visible_stem = backbone.make_stem()
            self.thermal_stem = backbone.make_stem()
        else:
            self.shared_stem = backbone.make_stem()
        # A ViT stem with a modality embedding takes each image's modality (0 visible, 1 thermal).
        self.stem_takes_modality = bool(getattr(backbone, "modality_embedding", False))
        if self.stem_takes_modality and self.two_stream:
            raise ValueError(
                "the ViT's modality_embedding needs stems=shared: with two_stream each modality "
                "already has its own patch, class and position embeddings"
            )
        self.trunk = backbone.make_trunk()
        self._between_stages(backbone, aggregation, expansion, expansion_pool_weight)
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
        if self.has_expansion:
            names.append("orthogonality")
        self.output_names = tuple(names)

    def _between_stages(self, backbone, aggregation, expansion, pool_weight: float) -> None:
        """Build the modules that act between trunk stages, when any is configured."""
        self.has_aggregation = aggregation is not None
        self.has_expansion = expansion is not None
        self.rows_per_image = 1
        self.staged = self.has_aggregation or self.has_expansion
        if not self.staged:
            return
        stage_channels = _stage_channels(backbone)
        self.num_stages = len(stage_channels)
        if self.has_aggregation:
            self.aggregation = aggregation(stage_channels=stage_channels)
        if self.has_expansion:
            if not 0.0 <= pool_weight <= 1.0:
                raise ValueError(f"expansion_pool_weight={pool_weight} must be in [0, 1]")
            self.expansion = expansion(stage_channels=stage_channels)
            self.rows_per_image = self.expansion.rows_per_image
            self.pool_scale = float(pool_weight) ** 0.5
            self.feat_scale = (1.0 - float(pool_weight)) ** 0.5

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
        aggregation: Optional[Callable] = None,
        expansion: Optional[Callable] = None,
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
        for name, factory in (("aggregation", aggregation), ("expansion", expansion)):
            if factory is not None:
                declared = factory.func.expected_shapes(
                    stage_channels=_stage_channels(backbone), **factory.keywords
                )
                shapes.update(_prefixed(declared, name + "."))
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
        adapt = getattr(recipe, "adapt_weight", None)
        for name, value in arrays.items():
            part = recipe.weight_part(name)
            if part is not None:
                value = adapt(part[1], value) if adapt is not None else value
                for prefix in targets[part[0]]:
                    mapped[prefix + part[1]] = value
        optional = tuple(f"trunk.{p}" for p in recipe.optional_trunk_prefixes)
        optional += tuple(p + n for p in stems for n in getattr(recipe, "optional_stem_names", ()))
        return mapped, stems + ("trunk.",), optional

    def use_mixed_precision(self, keep_batchnorm_fp32: bool = True) -> None:
        """Run the stems and the trunk in float16 (BatchNorm, and the cells that declare
        `keeps_float32` such as a ViT's LayerNorm, in float32 unless O3-style).

        The backbone holds nearly all the compute; the feature map returns to float32 before
        pooling, so the heads, both attention branches and the losses stay in float32.
        Parameter names do not change (a wrapper cell would rename them).
        """
        names = ("visible_stem", "thermal_stem", "shared_stem", "trunk", "aggregation", "expansion")
        for name in names:
            cell = getattr(self, name, None)
            if cell is None:
                continue
            cell.to_float(mstype.float16)
            if keep_batchnorm_fp32:
                for _, sub in cell.cells_and_names():
                    if isinstance(sub, nn.BatchNorm2d) or getattr(sub, "keeps_float32", False):
                        sub.to_float(mstype.float32)

    def noise_size(self, num_samples: int) -> int:
        """Length of the dropout noise a training forward over `num_samples` images needs."""
        if self.has_graph_attention:
            return self.graph_attention.noise_size(num_samples * self.rows_per_image)
        return 1

    def _trunk(self, x):
        """The trunk's feature map, with the modules between stages when configured."""
        if not self.staged:
            return self.trunk(x)
        for stage in range(1, self.num_stages + 1):
            out = self.trunk.stage(stage, x)
            block = self.aggregation.block_index(stage) if self.has_aggregation else -1
            if block >= 0:
                out = self.aggregation.blocks[block](out, x)
            if self.has_expansion and stage == self.expansion.stage:
                out = self.expansion(out)
            x = out
        return x

    def _map(self, trunk_output):
        """The (B, C, h, w) map of the trunk's output."""
        return trunk_output[1] if self.token_backbone else trunk_output

    def _pooled(self, trunk_output):
        """The global feature: a token backbone's class token, else the pooled map."""
        if self.token_backbone:
            return trunk_output[0].astype(mstype.float32)
        feature_map = trunk_output.astype(mstype.float32)
        if self.gem:
            return ((feature_map**self.gem_p).mean(axis=(2, 3)) + 1e-12) ** (1.0 / self.gem_p)
        return feature_map.mean(axis=(2, 3))

    def _trunk_features(self, feature_map):
        pooled = self._pooled(feature_map)
        if self.dynamic_batch:
            return pooled, batchnorm_inference(self.bottleneck, pooled)
        return pooled, self.bottleneck(pooled)

    def construct(self, visible, thermal, adjacency, noise):
        """Training forward of a paired batch, (B, 3, H, W) each; adjacency (2B, 2B)."""
        if self.two_stream:
            x = ops.cat((self.visible_stem(visible), self.thermal_stem(thermal)), axis=0)
        else:
            modality = ops.cat(
                (
                    ops.zeros(visible.shape[0], mstype.int32),
                    ops.ones(thermal.shape[0], mstype.int32),
                )
            )
            x = self._shared_stem(ops.cat((visible, thermal), axis=0), modality)
        feature_map = self._trunk(x)
        pooled, feat = self._trunk_features(feature_map)
        outputs = (pooled, feat, self.classifier(feat))
        if self.has_part_attention:
            feature_map = self._map(feature_map).astype(mstype.float32)
            outputs = outputs + (self.classifier(self.part_attention(feature_map, feat)),)
        if self.has_graph_attention:
            outputs = outputs + (self.graph_attention(pooled, adjacency, noise),)
        if self.has_expansion:
            outputs = outputs + (orthogonality(pooled, self.rows_per_image),)
        return outputs

    def _shared_stem(self, images, modality):
        """The shared stem; `modality` (B,) int32, 0 visible / 1 thermal, feeds a ViT's
        modality embedding."""
        if self.stem_takes_modality:
            return self.shared_stem(images, modality)
        return self.shared_stem(images)

    def _stem(self, images, modality: int):
        """The stem of `modality` (VISIBLE 1, THERMAL 2), or the shared one."""
        if not self.two_stream:
            index = ops.fill(mstype.int32, (images.shape[0],), modality - VISIBLE)
            return self._shared_stem(images, index)
        if modality == VISIBLE:
            return self.visible_stem(images)
        return self.thermal_stem(images)

    def feature_map(self, images, modality: int):
        """(B, 3, H, W) images of one modality -> the trunk's last (B, C, h, w) feature map."""
        return self._map(self._trunk(self._stem(images, modality))).astype(mstype.float32)

    def pooled_features(self, feature_map):
        """The pooled (B, C) feature of a feature map: the graph branch's input."""
        if self.token_backbone:
            raise ValueError("a token backbone's global feature is its class token, not a map's")
        return self._trunk_features(feature_map)[0]

    def embed(self, images, modality: int):
        """Test-time features of one modality: (B, 3, H, W) -> (FC, FC_att), each (B, C), L2-normed.

        Without part attention FC_att equals FC. `modality` is VISIBLE (1) or THERMAL (2).
        """
        return self.test_features(self._stem(images, modality))

    def test_features(self, stem_output):
        """Stem output -> (FC, FC_att), L2-normalised.

        With an expansion (DEEN), each image's embeddings are joined so that inner products are
        DEEN test.py's distances up to a constant: FC holds every embedding's pooled and BN
        features (its `distmat7`), FC_att the pooled ones weighted by `expansion_pool_weight`
        and the BN (or part-attention) ones by the rest (its `distmat8`, a = 0.1).
        """
        feature_map = self._trunk(stem_output)
        pooled, feat = self._trunk_features(feature_map)
        feat_att = feat
        if self.has_part_attention:
            feat_att = self.part_attention(self._map(feature_map).astype(mstype.float32), feat)
        if not self.has_expansion:
            return _l2_normalise(feat), _l2_normalise(feat_att)
        rows = self.rows_per_image
        pooled = per_image(_l2_normalise(pooled), rows)
        fc = ops.cat((pooled, per_image(_l2_normalise(feat), rows)), axis=1)
        att = per_image(_l2_normalise(feat_att), rows)
        fc_att = ops.cat((pooled * self.pool_scale, att * self.feat_scale), axis=1)
        return fc / (2.0 * rows) ** 0.5, fc_att / float(rows) ** 0.5


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
            index = ops.broadcast_to(modality.reshape(1) - VISIBLE, (images.shape[0],))
            x = net._shared_stem(images, index.astype(mstype.int32))
        return net.test_features(x)


def _stage_channels(backbone) -> tuple:
    stage_channels = getattr(backbone, "stage_channels", None)
    if stage_channels is None:
        raise ValueError(
            f"aggregation and expansion act between trunk stages; the {type(backbone).__name__} "
            "backbone does not give its stages (stage_channels)"
        )
    return stage_channels()


def _prefixed(shapes: Dict[str, tuple], prefix: str) -> Dict[str, tuple]:
    return {prefix + name: tuple(shape) for name, shape in shapes.items()}


def _l2_normalise(x):
    return x / ops.maximum(ops.norm(x, dim=1, keepdim=True), 1e-12)
