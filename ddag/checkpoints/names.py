"""Every parameter-name table in one place: how other code bases name the tensors ddag uses.

- PyTorch (torchvision, timm, IBN-Net, the reference DDAG code): BatchNorm `weight/bias/
  running_mean/running_var` are `gamma/beta/moving_mean/moving_variance` here and `downsample`
  is `down_sample_layer` (`torch_to_mindspore_names`);
- the reference DDAG code's modules (`REFERENCE_DDAG_PREFIXES`, `reference_ddag_name`);
- the MindSpore model-zoo DDAG port, for both stem layouts (`MS_ZOO_PREFIXES`; its names are
  listed in tests/data/ms_param_manifest_regdb.json);
"""

import re
from typing import Dict, Iterable, Optional

import numpy as np

_COMMON_PREFIXES = (
    ("bottleneck.", "bottleneck."),
    ("classifier.", "classifier."),
    ("wpa.", "part_attention."),
    ("graph_att.out_attention.", "graph_attention.out_attention."),
)
# (model-zoo prefix, ddag prefix), first match wins.
MS_ZOO_PREFIXES = {
    "two_stream": (
        ("visible_module.visible.", "visible_stem."),
        ("thermal_module.thermal.", "thermal_stem."),
        ("base_resnet.base.", "trunk."),
    )
    + _COMMON_PREFIXES,
    "shared": (
        ("resnet50.layer", "trunk.layer"),
        ("resnet50.", "shared_stem."),
    )
    + _COMMON_PREFIXES,
}


def rename_by_prefix(name: str, table) -> Optional[str]:
    """`name` with the first matching prefix of `table` ((theirs, ours) pairs) replaced; None
    when no prefix matches or the matching one maps to None (an entry we do not use)."""
    for theirs, ours in table:
        if name.startswith(theirs):
            return None if ours is None else ours + name[len(theirs) :]
    return None


def ms_zoo_to_ddag(name: str, stems: str) -> Optional[str]:
    """Our parameter name for a model-zoo DDAG name, or None if our layout does not use it."""
    return rename_by_prefix(name, MS_ZOO_PREFIXES[stems])


def is_ms_zoo_checkpoint(params: Dict) -> bool:
    """Whether `params` carry the MindSpore model-zoo DDAG names (its forward uses resnet50.*)."""
    return "resnet50.conv1.weight" in params and "classifier.weight" in params


# PyTorch BatchNorm entry -> MindSpore name.
TORCH_NORM_NAMES = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
# PyTorch module names that differ in ours (whole dotted segments).
TORCH_MODULE_NAMES = {"downsample": "down_sample_layer"}
# Instance-norm halves of IBN blocks keep no running statistics but are norms all the same.
_NORM_MODULE = re.compile(r"(?:^|\.)IN$")

# The reference DDAG code (mangye16/DDAG model_main.py embed_net), after the renames above:
# (its prefix, ours); None drops weights its forward never uses. First match wins.
REFERENCE_DDAG_PREFIXES = (
    ("visible_module.visible.conv1.", "visible_stem.conv1."),
    ("visible_module.visible.bn1.", "visible_stem.bn1."),
    ("visible_module.visible.", None),  # the rest of the stem's ResNet copy is never run
    ("thermal_module.thermal.conv1.", "thermal_stem.conv1."),
    ("thermal_module.thermal.bn1.", "thermal_stem.bn1."),
    ("thermal_module.thermal.", None),
    ("base_resnet.base.layer", "trunk.layer"),
    ("base_resnet.base.", None),
    ("bottleneck.", "bottleneck."),
    ("classifier.", "classifier."),
    ("classifier1.", None),
    ("classifier2.", None),
    ("wpa.fc1.0.", "part_attention.fc1."),
    ("wpa.W.", None),
    ("wpa.", "part_attention."),
    ("out_att.", "graph_attention.out_attention."),
)
# The reference's hidden graph heads, attention_0 .. attention_{k-1}, are our heads.0 .. k-1.
REFERENCE_GRAPH_HEAD = re.compile(r"^attention_(\d+)\.")


# The DEEN code (ZYK100/LLCM DEEN/model.py embed_net), after the renames above: its stems and
# shared layers are the reference DDAG's, its modules between stages ours under new prefixes.
DEEN_PREFIXES = (
    ("DEE.", "expansion."),
    ("MFA1.", "aggregation.blocks.0."),
    ("MFA2.", "aggregation.blocks.1."),
    ("MFA3.", "aggregation.blocks.2."),
) + tuple(p for p in REFERENCE_DDAG_PREFIXES if not p[0].startswith(("wpa", "out_att")))


def deen_name(name: str, num_stages: int = 4) -> Optional[str]:
    """Our parameter name for a (renamed) DEEN entry, or None if we do not use it (the stems'
    unused ResNet copies; layer4 when the RegDB variant drops it)."""
    ours = rename_by_prefix(name, DEEN_PREFIXES)
    if ours is not None and num_stages < 4 and ours.startswith("trunk.layer4."):
        return None
    return ours


def is_deen(names: Iterable[str]) -> bool:
    """Whether these (renamed) names are a DEEN state dict."""
    names = set(names)
    return "DEE.FC11.weight" in names and "MFA1.CNL.g.weight" in names


# PMT's network (hulu88/PMT model/make_model.py): `base` is its ViT; BN neck and classifier.
PMT_PREFIXES = (
    ("base.patch_embed.", "shared_stem.patch_embed."),
    ("base.cls_token", "shared_stem.cls_token"),
    ("base.pos_embed", "shared_stem.pos_embed"),
    ("base.blocks.", "trunk.blocks."),
    ("base.norm.", "trunk.norm."),
    ("bottleneck.", "bottleneck."),
    ("classifier.", "classifier."),
)


def pmt_name(name: str) -> Optional[str]:
    """Our parameter name for a (renamed) PMT entry, or None if we do not use it."""
    return rename_by_prefix(name, PMT_PREFIXES)


def is_pmt(names: Iterable[str]) -> bool:
    """Whether these (renamed) names are a PMT state dict."""
    names = set(names)
    return "base.cls_token" in names and "classifier.weight" in names


def torch_to_mindspore_names(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The same arrays under MindSpore names (norm parameters and `downsample` renamed)."""
    modules_with_stats = {n.rpartition(".")[0] for n in state if n.endswith(".running_mean")}
    renamed = {}
    for name, value in state.items():
        module, _, leaf = name.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        is_norm = module in modules_with_stats or bool(_NORM_MODULE.search(module))
        if is_norm and leaf in TORCH_NORM_NAMES:
            leaf = TORCH_NORM_NAMES[leaf]
        parts = [TORCH_MODULE_NAMES.get(p, p) for p in module.split(".")] if module else []
        renamed[".".join(parts + [leaf])] = value
    return renamed


def reference_ddag_name(name: str) -> Optional[str]:
    """Our parameter name for a (renamed) reference DDAG entry, or None if we do not use it."""
    head = REFERENCE_GRAPH_HEAD.match(name)
    if head:
        return f"graph_attention.heads.{head.group(1)}." + name[head.end() :]
    return rename_by_prefix(name, REFERENCE_DDAG_PREFIXES)


def is_reference_ddag(names: Iterable[str]) -> bool:
    """Whether these (renamed) names are a reference DDAG state dict."""
    names = set(names)
    return "visible_module.visible.conv1.weight" in names and "classifier.weight" in names
