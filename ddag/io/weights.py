"""Weight files of any origin as {MindSpore-style name: numpy array}.

Reads MindSpore `.ckpt`, `.safetensors` (read here, every tensor checked against the file) and
PyTorch `.pth`/`.pt`/`.bin` state dicts (`ddag.io.torch_files`, no unpickling of code), and
translates PyTorch names with the one table below: BatchNorm `weight/bias/running_mean/
running_var` -> `gamma/beta/moving_mean/moving_variance` (`num_batches_tracked` dropped),
`downsample` -> `down_sample_layer`. A torchvision or timm ResNet then reads like a model-zoo
MindSpore ResNet (`conv1.*`, `bn1.*`, `layer1.0.*`, `fc.*`), and the reference DDAG code's
checkpoints like ours through `REFERENCE_DDAG_PREFIXES`.
"""

import json
import os
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


# safetensors dtype -> numpy dtype (BF16 is widened to float32 below).
SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
MAX_SAFETENSORS_HEADER = 100 << 20  # the format's own limit


def _read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """The tensors of a .safetensors file, each checked against the file before it is read.

    The format is an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
    data_offsets}} and the data. Every shape must fit the byte range it names, and every range
    must lie in the file, so nothing larger than the file is ever allocated.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"cannot read {path}: damaged .safetensors file (no header)")
        length = int.from_bytes(prefix, "little")
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise CheckpointError(
                f"cannot read {path}: its header claims {length} bytes in a {size}-byte file"
            )
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise CheckpointError(f"cannot read {path}: its header is not JSON ({err})") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"cannot read {path}: its header is not a mapping")
        data_start, arrays = 8 + length, {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype, shape, (begin, end) = _safetensors_entry(path, name, info)
            if not 0 <= begin <= end <= size - data_start:
                raise CheckpointError(
                    f"{path}: tensor {name} lies at bytes {begin}..{end}, past the end of the "
                    "data: damaged .safetensors file"
                )
            count = int(np.prod(shape, dtype=object)) if shape else 1
            if count * np.dtype(dtype).itemsize != end - begin:
                raise CheckpointError(
                    f"{path}: tensor {name} of shape {list(shape)} needs "
                    f"{count * np.dtype(dtype).itemsize} bytes, its range holds {end - begin}"
                )
            handle.seek(data_start + begin)
            array = np.frombuffer(handle.read(end - begin), dtype=dtype).reshape(shape)
            if info["dtype"] == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            arrays[name] = array.astype(array.dtype.newbyteorder("="))
    return arrays


def _safetensors_entry(path: Path, name: str, info) -> tuple:
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: header entry {name!r} is not a mapping")
    dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
    if dtype is None:
        raise CheckpointError(
            f"{path}: tensor {name} has dtype {info.get('dtype')!r}, which ddag does not read "
            f"(supported: {', '.join(SAFETENSORS_DTYPES)}); convert the file to float32"
        )
    shape, offsets = info.get("shape"), info.get("data_offsets")
    numbers = (
        isinstance(shape, list)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and len(shape) <= 16
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in shape + offsets)
    )
    if not numbers:
        raise CheckpointError(f"{path}: tensor {name} has an invalid shape or byte range")
    return dtype, tuple(shape), tuple(offsets)


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
