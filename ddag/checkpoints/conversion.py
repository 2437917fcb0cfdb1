"""Weights from other code bases as ddag networks: layouts read off the tensors' names and shapes.

Two kinds of file are understood (names already translated by `ddag.checkpoints.weight_files`):
- an ImageNet ResNet (torchvision, timm, IBN-Net, the MindSpore model zoo): its depth, block
  type and widths follow from `layerL.B.*` entries, and it becomes a backbone checkpoint with
  model-zoo names that `init.weights` loads;
- a checkpoint of the reference DDAG code (`{'net': embed_net.state_dict()}`): the number of
  identities, parts and graph heads follow from its tensors, and it becomes a full ddag
  checkpoint that `task=eval` loads;
- a checkpoint of the DEEN code (ZYK100/LLCM `DEEN/model.py` embed_net): the stages with MFA
  blocks, the stage DEE follows and whether layer4 is used (the RegDB variant drops it) follow
  from its tensors.
"""

import re
from typing import Dict, Tuple

import numpy as np

from ddag.checkpoints.format import LoadReport, load_into
from ddag.checkpoints.names import REFERENCE_GRAPH_HEAD, deen_name, pmt_name, reference_ddag_name
from ddag.errors import CheckpointError
from ddag.models.architecture import build_network
from ddag.models.backbones.resnet import (
    MAX_BLOCKS,
    MAX_WIDTH,
    STEM_PREFIXES,
    TRUNK_PREFIXES,
    ResNet,
    imagenet_name,
)
from ddag.models.backbones.resnet_ibn import ResNetIBN

CONVERT_KINDS = ("auto", "backbone", "ddag", "deen", "pmt")  # task=convert: what the file holds
# PMT trains at 256x128 (config/config.py); its SYSU/RegDB configs may set 288x144.
PMT_INPUT_SIZES = ((256, 128), (288, 144), (384, 192))
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.")
RESNET_TARGET = "ddag.models.backbones.resnet.ResNet"
RESNET_IBN_TARGET = "ddag.models.backbones.resnet_ibn.ResNetIBN"


def resnet_layout(arrays: Dict[str, np.ndarray], where: str = "the file") -> dict:
    """ResNet recipe arguments (target, layers, widths, stem_channels, block) of backbone-named
    arrays (`conv1.weight`, `layer1.0.conv1.weight`, ...).

    Read off the names and shapes and checked before anything is built: block indices must run
    0..n-1 in every stage with each block's convolutions present and non-empty, within the
    recipe's bounds, so a stray name (`layer1.100000.conv1.weight`) cannot make us build a
    hundred thousand blocks.
    """
    indices = {stage: set() for stage in range(4)}
    for name in arrays:
        match = _BLOCK.match(name)
        if match:
            indices[int(match.group(1)) - 1].add(int(match.group(2)))
    if "conv1.weight" not in arrays or not all(indices.values()):
        raise CheckpointError(f"{where} is not a ResNet: it lacks conv1 or one of layer1-4")
    block = "bottleneck" if "layer1.0.conv3.weight" in arrays else "basic"
    convs = ("conv1", "conv2", "conv3") if block == "bottleneck" else ("conv1", "conv2")
    blocks = []
    for stage, found in indices.items():
        if sorted(found) != list(range(len(found))) or len(found) > MAX_BLOCKS:
            shown = sorted(found)[:5] + (["..."] if len(found) > 5 else []) + [max(found)]
            raise CheckpointError(
                f"{where}: the blocks of layer{stage + 1} are numbered {shown}, not 0..n-1 with "
                f"n <= {MAX_BLOCKS}; the file is damaged or not a ResNet"
            )
        for index in sorted(found):
            for conv in convs:
                weight = arrays.get(f"layer{stage + 1}.{index}.{conv}.weight")
                if weight is None or weight.size == 0:
                    raise CheckpointError(
                        f"{where}: layer{stage + 1}.{index}.{conv}.weight is missing or empty; "
                        "the file is damaged or not a ResNet"
                    )
        blocks.append(len(found))
    widths = [int(arrays[f"layer{s + 1}.0.conv1.weight"].shape[0]) for s in range(4)]
    stem = int(arrays["conv1.weight"].shape[0])
    if not all(1 <= w <= MAX_WIDTH for w in (*widths, stem)):
        raise CheckpointError(f"{where}: widths {widths} / stem {stem} exceed {MAX_WIDTH}")
    ibn = "layer1.0.bn1.IN.gamma" in arrays
    return {
        "_target_": RESNET_IBN_TARGET if ibn else RESNET_TARGET,
        "layers": blocks,
        "widths": widths,
        "stem_channels": stem,
        "block": block,
    }


def backbone_weights(arrays: Dict[str, np.ndarray], where: str = "the file") -> Tuple:
    """(backbone arrays, recipe spec, LoadReport, dropped names) of an ImageNet ResNet file.

    The arrays are checked by loading them strictly into the stem and trunk of the ResNet the
    file describes, so a converted file is known to load.
    """
    kept = {imagenet_name(k): v for k, v in arrays.items() if imagenet_name(k)}
    dropped = sorted(k for k in arrays if not imagenet_name(k))
    spec = resnet_layout(kept, where)
    recipe_type = ResNetIBN if spec["_target_"] == RESNET_IBN_TARGET else ResNet
    recipe = recipe_type(
        layers=spec["layers"],
        widths=spec["widths"],
        stem_channels=spec["stem_channels"],
        block=spec["block"],
    )
    report = LoadReport()
    pieces = ((recipe.make_stem(), STEM_PREFIXES), (recipe.make_trunk(), TRUNK_PREFIXES))
    for cell, prefixes in pieces:
        part = load_into(cell, {k: v for k, v in kept.items() if k.startswith(prefixes)})
        report.loaded += part.loaded
    return kept, spec, report, dropped


def _base_resnet(arrays: Dict[str, np.ndarray], where: str) -> dict:
    """The ResNet recipe of the shared layers (`base_resnet.base.*`) of the reference DDAG
    code and of DEEN, which builds on it: last stride 1."""
    prefix = "base_resnet.base."
    trunk = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    return {**resnet_layout(trunk, f"the {where} checkpoint's base_resnet"), "last_stride": 1}


def _strict_network(arrays: Dict[str, np.ndarray], where: str, make_spec, rename_for) -> Tuple:
    """(network, spec, LoadReport, unused names): the network of `make_spec(arrays)`, every
    parameter loaded from `arrays` through `rename_for(spec)` (a function giving our name, or
    None for an entry the other code's forward never uses)."""
    if "classifier.weight" not in arrays:
        raise CheckpointError(f"the {where} checkpoint has no classifier.weight")
    spec = make_spec(arrays)
    rename = rename_for(spec)
    network = build_network(spec, int(arrays["classifier.weight"].shape[0]))
    report = load_into(network, arrays, strict=True, rename=rename)
    unused = sorted(k for k in arrays if rename(k) is None)
    return network, spec, report, unused


def reference_ddag_spec(arrays: Dict[str, np.ndarray]) -> dict:
    """Our model spec for a reference DDAG state dict (two stems, IWPA and CGSA if present)."""
    backbone = _base_resnet(arrays, "reference")
    spec = {"_target_": "ddag.models.ddag.DDAG", "stems": "two_stream", "backbone": backbone}
    if "wpa.gate" in arrays:
        spec["part_attention"] = {
            "_target_": "ddag.models.attention.iwpa.WeightedPartAttention",
            "_partial_": True,
            "num_parts": int(arrays["wpa.gate"].shape[0]),
            "conv_bias": "wpa.fc1.0.bias" in arrays,
        }
    heads = sorted(
        int(REFERENCE_GRAPH_HEAD.match(k).group(1))
        for k in arrays
        if REFERENCE_GRAPH_HEAD.match(k) and k.endswith(".W")
    )
    if heads and heads != list(range(len(heads))):
        raise CheckpointError(
            f"the reference checkpoint's graph heads are numbered {heads[:6]}..., not 0..n-1"
        )
    if heads and "out_att.W" in arrays:
        spec["low_dim"] = int(arrays["attention_0.W"].shape[1])
        spec["graph_attention"] = {
            "_target_": "ddag.models.attention.cgsa.GraphStructuredAttention",
            "_partial_": True,
            "num_heads": len(heads),
        }
    return spec


def reference_ddag_network(arrays: Dict[str, np.ndarray]) -> Tuple:
    """(network, spec, LoadReport, unused names) of a reference DDAG state dict, loaded
    strictly: every parameter of our network comes from the file; entries the reference never
    uses in its forward (classifier1/2, wpa.W, base_resnet's own stem) are left out and listed."""
    return _strict_network(
        arrays, "reference", reference_ddag_spec, lambda spec: reference_ddag_name
    )


def deen_spec(arrays: Dict[str, np.ndarray]) -> dict:
    """Our model spec for a DEEN state dict (two stems, MFA and DEE where its tensors say)."""
    backbone = _base_resnet(arrays, "DEEN")
    expanded = int(arrays["DEE.FC11.weight"].shape[1])
    outputs = [w * (4 if backbone["block"] == "bottleneck" else 1) for w in backbone["widths"]]
    if expanded not in outputs[:3]:
        raise CheckpointError(
            f"the DEEN checkpoint's DEE takes {expanded} channels, no stage before the last "
            f"gives that (stage outputs {outputs})"
        )
    stage = outputs.index(expanded) + 1
    backbone["num_stages"] = stage + 1
    return {
        "_target_": "ddag.models.ddag.DDAG",
        "stems": "two_stream",
        "backbone": backbone,
        "part_attention": None,
        "graph_attention": None,
        "aggregation": {
            "_target_": "ddag.models.aggregation.mfa.MultiStageAggregation",
            "_partial_": True,
            "stages": [k for k in (1, 2, 3) if f"MFA{k}.CNL.g.weight" in arrays],
        },
        "expansion": {
            "_target_": "ddag.models.expansion.dee.DiverseEmbeddingExpansion",
            "_partial_": True,
            "stage": stage,
            "dropout": 0.01,
        },
        "expansion_pool_weight": 0.1,
    }


def deen_network(arrays: Dict[str, np.ndarray]) -> Tuple:
    """(network, spec, LoadReport, unused names) of a DEEN state dict, loaded strictly; entries
    its forward never uses (the stems' ResNet copies, base_resnet's own stem and fc, layer4 of
    the RegDB variant) are left out and listed."""

    def rename_for(spec):
        return lambda name: deen_name(name, spec["backbone"]["num_stages"])

    return _strict_network(arrays, "DEEN", deen_spec, rename_for)


def pmt_spec(arrays: Dict[str, np.ndarray]) -> dict:
    """Our model spec for a PMT state dict: ViT width and depth read off its tensors, 64-wide
    heads (ViT-Ti/S/B), patch stride 12 as PMT trains, and the input size whose grid its
    position embedding covers (the backbone's `height` and `width`)."""
    cls, pos = arrays.get("base.cls_token"), arrays.get("base.pos_embed")
    patch = arrays.get("base.patch_embed.proj.weight")
    if cls is None or pos is None or patch is None or cls.ndim != 3 or pos.ndim != 3:
        raise CheckpointError(
            "the PMT checkpoint lacks its ViT's class, position or patch embedding"
        )
    dim, tokens, side = int(cls.shape[2]), int(pos.shape[1]) - 1, int(patch.shape[-1])
    depth = len({k.split(".")[2] for k in arrays if k.startswith("base.blocks.")})
    sizes = [
        (h, w)
        for h, w in PMT_INPUT_SIZES
        if ((h - side) // 12 + 1) * ((w - side) // 12 + 1) == tokens
    ]
    if not sizes or dim % 64 or not 1 <= depth <= 64:
        raise CheckpointError(
            f"the PMT checkpoint's ViT ({dim} wide, {depth} blocks, {tokens} patches) matches "
            f"none of PMT's input sizes {list(PMT_INPUT_SIZES)} at stride 12 with 64-wide heads"
        )
    height, width = sizes[0]
    backbone = {
        "_target_": "ddag.models.backbones.vit.VisionTransformer",
        "embed_dim": dim,
        "depth": depth,
        "num_heads": dim // 64,
        "patch_size": side,
        "stride": 12,
        "height": height,
        "width": width,
        "layer_norm_eps": 1e-5,
    }
    spec = {
        "_target_": "ddag.models.ddag.DDAG",
        "stems": "shared",
        "backbone": backbone,
        "part_attention": None,
        "graph_attention": None,
    }
    return spec


def pmt_network(arrays: Dict[str, np.ndarray]) -> Tuple:
    """(network, spec, LoadReport, unused names) of a PMT state dict, loaded strictly."""
    return _strict_network(arrays, "PMT", pmt_spec, lambda spec: pmt_name)
