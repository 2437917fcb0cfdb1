"""PyTorch `.pth` / `.pt` files read as data, without torch and without running their pickle.

`torch.save` (PyTorch >= 1.6) writes a zip holding `<name>/data.pkl` (a pickle of the object
whose tensors are persistent references) and `<name>/data/<key>` (each storage's raw bytes).
A pickle can name any importable callable, so a crafted file can run code when it is loaded
with `pickle` or `torch.load`. Here the pickle is read by an unpickler that knows only the few
names a saved state dict uses (the tensor and parameter rebuild functions, storage types,
OrderedDict, latin-1 bytes, numpy arrays and scalars of plain dtypes) and maps each one onto
our own function that builds a numpy array; any other name stops the read with
CheckpointError before anything is called.
"""

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np

from ddag.errors import CheckpointError

# torch storage class -> numpy dtype of its elements.
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "BFloat16Storage": "bfloat16",
}


class _StorageType:
    """Stand-in for a torch storage class: only carries the element type."""

    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    """A numpy copy of the tensor view (storage, offset, size, stride), strides in elements."""
    if not isinstance(storage, np.ndarray):
        raise CheckpointError("a tensor in the file has no storage: damaged file")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return np.array(storage[offset])
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if offset < 0 or any(s < 0 for s in stride) or (min(size) > 0 and extent > storage.size):
        raise CheckpointError("a tensor in the file points outside its storage: damaged file")
    if min(size) == 0:
        return np.zeros(size, storage.dtype)
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], size, tuple(s * storage.itemsize for s in stride), writeable=False
    )
    return np.array(view)


def _rebuild_parameter(data, *_unused):
    return data


def _plain_dtype(*args):
    dtype = np.dtype(*args[:1])
    if dtype.hasobject:
        raise CheckpointError("the file holds a numpy array of Python objects; refused")
    return dtype


def _numpy_scalar(dtype, data=None):
    return np.frombuffer(data, dtype=_plain_dtype(dtype), count=1)[0]


def _numpy_reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise CheckpointError("the file rebuilds a numpy subclass; refused")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _latin1_bytes(text, encoding="latin1"):
    """Protocol-2 pickles store bytes as `_codecs.encode(text, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("the file encodes bytes in an unexpected way; refused")
    return text.encode("latin1")


_NUMPY_NAMES = {
    "_reconstruct": _numpy_reconstruct,
    "scalar": _numpy_scalar,
}

# (module, name) -> what the unpickler gives back. Nothing else is resolved.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
    **{
        (f"{root}.multiarray", name): function
        for root in ("numpy.core", "numpy._core")  # numpy 1 and numpy 2 module names
        for name, function in _NUMPY_NAMES.items()
    },
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(handle)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: Dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise CheckpointError(
                f"{self.path} asks to run {module}.{name} while loading; a weight file may hold "
                "only tensors, numbers, strings and containers, so it was refused and nothing "
                "in it was run"
            )
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise CheckpointError(f"{self.path}: unknown persistent reference {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self.path}: a storage of unknown type {storage_type!r:.80}")
        if key not in self.storages:
            self.storages[key] = self._read_storage(key, STORAGE_DTYPES[storage_type.name])
        return self.storages[key]

    def _read_storage(self, key: str, dtype) -> np.ndarray:
        if "/" in key or key.startswith("."):
            raise CheckpointError(f"{self.path}: storage key {key!r} is not a plain name")
        try:
            raw = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self.path} lacks the data of storage {key}: damaged") from None
        if dtype == "bfloat16":  # the upper half of a float32
            half = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            return half.view(np.float32)
        dtype = np.dtype(dtype).newbyteorder("<")
        if len(raw) % dtype.itemsize:
            raise CheckpointError(f"{self.path}: storage {key} has a partial element: damaged")
        return np.frombuffer(raw, dtype=dtype)


def load_torch_file(path) -> Any:
    """The object a `torch.save` zip file holds, with every tensor as a numpy array.

    Raises CheckpointError for legacy (pre-1.6) files, damaged archives, big-endian files and
    any pickle that names something other than tensors, containers and plain numpy values.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a PyTorch zip checkpoint (PyTorch >= 1.6). Re-save it with "
            "torch.save(state_dict, path) in a recent PyTorch, or convert it to .safetensors"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{path}: expected one data.pkl in the archive")
            prefix = pickles[0][: -len("data.pkl")]
            order = f"{prefix}byteorder"
            if order in archive.namelist() and archive.read(order).strip() != b"little":
                raise CheckpointError(f"{path} was written big-endian; not supported")
            with archive.open(pickles[0]) as raw:
                handle = io.BytesIO(raw.read())
            return _RestrictedUnpickler(handle, archive, prefix, path).load()
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
    ) as err:
        raise CheckpointError(f"cannot read {path}: damaged PyTorch file ({err})") from None
