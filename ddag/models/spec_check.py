"""Does a model spec describe the tensors stored beside it? Checked before anything is built.

A checkpoint stores its architecture as data; a crafted or damaged spec (`layers=[10**6, 1, 1,
1]`, `num_parts=10**9`) would otherwise make the network allocate gigabytes before the strict
load finds the mismatch. Every spec value that decides how much is allocated is read off the
file's own parameter names and shapes instead, and must agree.
"""

import inspect
import re
from typing import Dict, List

from ddag.models.architecture import resolve_component

_TRUNK_BLOCK = re.compile(r"^trunk\.layer([1-4])\.(\d+)\.")
_NON_LOCAL = re.compile(r"^trunk\.nl([1-4])\.(\d+)\.")
_GRAPH_HEAD = re.compile(r"^graph_attention\.heads\.(\d+)\.")


def _arguments(spec: dict) -> dict:
    """The spec's values over its component's defaults."""
    component = resolve_component(spec.get("_target_"))
    defaults = {
        name: p.default
        for name, p in inspect.signature(component).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **{k: v for k, v in spec.items() if not k.startswith("_")}}


def _indices(pattern, names, groups: int = 2) -> Dict[int, List[int]]:
    found: Dict[int, set] = {}
    for name in names:
        match = pattern.match(name)
        if match:
            key = int(match.group(1)) if groups == 2 else 0
            found.setdefault(key, set()).add(int(match.group(groups)))
    return {key: sorted(values) for key, values in found.items()}


def _counts(found: Dict[int, List[int]], problems: List[str], what: str) -> List[int]:
    counts = []
    for stage in range(1, 5):
        indices = found.get(stage, [])
        if indices != list(range(len(indices))):
            problems.append(f"{what} of stage {stage} are numbered {indices[:6]}..., not 0..n-1")
        counts.append(len(indices))
    return counts


def spec_mismatches(model: dict, shapes: Dict[str, tuple]) -> List[str]:
    """What the model spec says and the tensors (name -> shape) contradict; [] if they agree."""
    problems: List[str] = []

    def shape(name):
        return shapes.get(name, ())

    network = _arguments(model)
    backbone = _arguments(model.get("backbone") or {})
    stem = "shared_stem" if network.get("stems") == "shared" else "visible_stem"
    layers = _counts(_indices(_TRUNK_BLOCK, shapes), problems, "blocks")
    if list(backbone.get("layers", ())) != layers:
        problems.append(f"layers {list(backbone.get('layers', ()))}, the tensors hold {layers}")
    widths = [shape(f"trunk.layer{s}.0.conv1.weight")[:1] for s in range(1, 5)]
    if [list(w) for w in widths] != [[w] for w in backbone.get("widths", ())]:
        problems.append(f"widths {list(backbone.get('widths', ()))}, the tensors {widths}")
    if shape(f"{stem}.conv1.weight")[:1] != (backbone.get("stem_channels"),):
        problems.append(
            f"stem_channels {backbone.get('stem_channels')}, {stem}.conv1.weight has shape "
            f"{shape(f'{stem}.conv1.weight')}"
        )
    blocks = _counts(_indices(_NON_LOCAL, shapes), problems, "non-local blocks")
    if list(backbone.get("non_local", ())) != blocks:
        problems.append(f"non_local {list(backbone.get('non_local', ()))}, the tensors {blocks}")
    inner = {shape(f"trunk.nl{s}.0.g.weight")[:1] for s in range(1, 5) if blocks[s - 1]}
    if inner and inner != {(backbone.get("non_local_channels"),)}:
        problems.append(
            f"non_local_channels {backbone.get('non_local_channels')}, the tensors {inner}"
        )
    part = model.get("part_attention")
    if bool(part) != ("part_attention.gate" in shapes):
        problems.append("part attention in the spec and in the tensors disagree")
    elif part and shape("part_attention.gate") != (_arguments(part).get("num_parts"),):
        problems.append(
            f"num_parts {_arguments(part).get('num_parts')}, part_attention.gate has shape "
            f"{shape('part_attention.gate')}"
        )
    graph = model.get("graph_attention")
    heads = _indices(_GRAPH_HEAD, shapes, groups=1).get(0, [])
    if bool(graph) != bool(heads):
        problems.append("graph attention in the spec and in the tensors disagree")
    elif graph:
        if heads != list(range(_arguments(graph).get("num_heads", -1))):
            problems.append(f"num_heads {_arguments(graph).get('num_heads')}, the tensors {heads}")
        if shape("graph_attention.heads.0.W")[1:] != (network.get("low_dim"),):
            problems.append(
                f"low_dim {network.get('low_dim')}, graph_attention.heads.0.W has shape "
                f"{shape('graph_attention.heads.0.W')}"
            )
    return problems
