"""Weight files of any origin as {MindSpore-style name: numpy array}.

Reads MindSpore `.ckpt`, `.safetensors` (the `safetensors` package's numpy API, no torch) and
PyTorch `.pth`/`.pt`/`.bin` state dicts (`ddag.io.torch_files`, no unpickling of code), and
translates PyTorch names with the one table below: BatchNorm `weight/bias/running_mean/
running_var` -> `gamma/beta/moving_mean/moving_variance` (`num_batches_tracked` dropped),
`downsample` -> `down_sample_layer`. A torchvision or timm ResNet then reads like a model-zoo
MindSpore ResNet (`conv1.*`, `bn1.*`, `layer1.0.*`, `fc.*`), and the reference DDAG code's
checkpoints like ours through `REFERENCE_DDAG_PREFIXES`.
"""

import re
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

from ddag.errors import CheckpointError
from ddag.io.checkpoint import read_checkpoint, rename_by_prefix
from ddag.io.torch_files import load_torch_file

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
MINDSPORE_SUFFIX = ".ckpt"

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


def _state_dict_of(loaded, path: Path) -> Dict[str, np.ndarray]:
    """The flat {name: array} inside a loaded PyTorch object ({'net': ...}, {'state_dict': ...}
    and {'model': ...} wrappers are unwrapped; a `module.` prefix from DataParallel is removed)."""
    for key in ("net", "state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not loaded:
        raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors)")
    arrays = {k: v for k, v in loaded.items() if isinstance(v, np.ndarray)}
    if not arrays or not all(isinstance(k, str) for k in arrays):
        raise CheckpointError(f"{path}: its state dict has no named tensors")
    if all(k.startswith("module.") for k in arrays):
        arrays = {k[len("module.") :]: v for k, v in arrays.items()}
    return arrays


def _read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise CheckpointError(f"reading {path} needs the safetensors package ({err})") from None
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: damaged .safetensors file ({err})") from None


def read_weights(path) -> Dict[str, np.ndarray]:
    """{name: float array} of a weight file, PyTorch names translated to MindSpore ones.

    The format follows the suffix: `.ckpt` (MindSpore, names kept), `.safetensors`, or a
    PyTorch `.pth`/`.pt`/`.bin` state dict. Optimiser entries of ddag checkpoints are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == MINDSPORE_SUFFIX:
        params, _ = read_checkpoint(path)
        return {
            k: np.asarray(v.asnumpy()) for k, v in params.items() if not k.startswith("optimizer.")
        }
    if suffix == SAFETENSORS_SUFFIX:
        return torch_to_mindspore_names(_read_safetensors(path))
    if suffix in TORCH_SUFFIXES:
        return torch_to_mindspore_names(_state_dict_of(load_torch_file(path), path))
    raise CheckpointError(
        f"{path}: unknown weight format {suffix!r}; use a MindSpore .ckpt, a .safetensors file "
        f"or a PyTorch state dict ({', '.join(TORCH_SUFFIXES)})"
    )
