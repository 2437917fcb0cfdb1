"""Weight files of any format as {name: numpy array}, names as the file has them.

Reads MindSpore `.ckpt`, `.safetensors` (read here, every tensor checked against the file) and
PyTorch `.pth`/`.pt`/`.bin` state dicts (`ddag.checkpoints.torch_files`, no unpickling of
code). `read_weight_file` returns the names as the file has them with the naming it uses;
`read_weights` translates PyTorch names to MindSpore ones (`ddag.checkpoints.names`), so a
torchvision or timm ResNet reads like a model-zoo MindSpore ResNet (`conv1.*`, `layer1.0.*`).
"""

import json
import os
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ddag.checkpoints.format import read_checkpoint_file
from ddag.checkpoints.names import torch_to_mindspore_names
from ddag.checkpoints.torch_files import load_torch_file
from ddag.errors import CheckpointError

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
MINDSPORE_SUFFIX = ".ckpt"


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


TORCH_NAMING, MINDSPORE_NAMING = "torch", "mindspore"


def read_weight_file(path) -> Tuple[Dict[str, np.ndarray], str]:
    """({name: array}, naming) of a weight file, names as the file has them.

    The format follows the suffix: `.ckpt` (MindSpore naming; optimiser entries of ddag
    checkpoints dropped), `.safetensors` or a PyTorch `.pth`/`.pt`/`.bin` state dict (PyTorch
    naming, translated by `read_weights`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == MINDSPORE_SUFFIX:
        params, _ = read_checkpoint_file(path)
        arrays = {
            k: np.asarray(v.asnumpy()) for k, v in params.items() if not k.startswith("optimizer.")
        }
        return arrays, MINDSPORE_NAMING
    if suffix == SAFETENSORS_SUFFIX:
        return _read_safetensors(path), TORCH_NAMING
    if suffix in TORCH_SUFFIXES:
        return _state_dict_of(load_torch_file(path), path), TORCH_NAMING
    raise CheckpointError(
        f"{path}: unknown weight format {suffix!r}; use a MindSpore .ckpt, a .safetensors file "
        f"or a PyTorch state dict ({', '.join(TORCH_SUFFIXES)})"
    )


def read_weights(path) -> Dict[str, np.ndarray]:
    """{name: array} of a weight file, PyTorch names translated to MindSpore ones."""
    arrays, naming = read_weight_file(path)
    return torch_to_mindspore_names(arrays) if naming == TORCH_NAMING else arrays
