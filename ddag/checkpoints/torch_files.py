"""PyTorch `.pth` / `.pt` files read as data, without torch and without running their pickle.

`torch.save` (PyTorch >= 1.6) writes a zip holding `<name>/data.pkl` (a pickle of the object
whose tensors are persistent references) and `<name>/data/<key>` (each storage's raw bytes).
A pickle can name any importable callable, so a crafted file can run code when it is loaded
with `pickle` or `torch.load`. Here the pickle is read by an unpickler that knows only the few
names a saved state dict uses (the tensor and parameter rebuild functions, storage types,
OrderedDict, latin-1 bytes, numpy arrays and scalars of plain dtypes) and maps each one onto
our own function that builds a numpy array; any other name stops the read with
CheckpointError before anything is called.

Sizes are bounded before anything is allocated: a tensor view may hold at most the elements of
its storage, whose bytes are in the file (stored, not compressed, as torch writes them); numpy
arrays are built from the bytes the pickle carries, of a plain dtype. The pickle's BUILD opcode
is honoured only for numpy arrays and dtypes, on objects made for this one load, so a crafted
file can neither change our stand-ins nor the next file's reading.
"""

import collections
import io
import os
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


# The data.pkl of a state dict is a few hundred KB; a tensor has at most this many dimensions.
MAX_PICKLE_BYTES = 64 << 20
MAX_DIMS = 16


class _StorageType:
    """Stand-in for a torch storage class: only carries the element type. A new one is made
    for every reference, so nothing a file does to one reaches another file."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _ArrayPlaceholder:
    """What numpy's `_reconstruct` gives before BUILD supplies shape, dtype and bytes."""

    __slots__ = ()


def _whole_numbers(values, what: str) -> tuple:
    if not isinstance(values, (tuple, list)) or len(values) > MAX_DIMS:
        raise CheckpointError(f"a tensor's {what} is not a short list of numbers: damaged file")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise CheckpointError(f"a tensor's {what} holds something other than whole numbers")
    return tuple(values)


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    """A numpy copy of the tensor view (storage, offset, size, stride), strides in elements.

    The view must lie inside the storage and hold no more elements than it (no stride-0
    broadcasts), so a tensor never costs more memory than the bytes the file holds for it.
    """
    if not isinstance(storage, np.ndarray):
        raise CheckpointError("a tensor in the file has no storage: damaged file")
    size, stride = _whole_numbers(size, "size"), _whole_numbers(stride, "stride")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise CheckpointError("a tensor in the file has a negative or non-numeric offset")
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise CheckpointError("a tensor in the file has an invalid size or stride: damaged file")
    count = int(np.prod(size, dtype=object)) if size else 1
    if count == 0:
        return np.zeros(size, storage.dtype)
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if extent > storage.size or count > storage.size - offset:
        raise CheckpointError(
            f"a tensor in the file views {count} elements of a storage of {storage.size} "
            f"(offset {offset}): it points outside its storage or repeats it; damaged file"
        )
    if any(s == 0 for n, s in zip(size, stride) if n > 1):
        raise CheckpointError("a tensor in the file repeats its storage (stride 0); refused")
    if not size:
        return np.array(storage[offset])
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
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
        raise CheckpointError("the file holds a numpy scalar of an unexpected form; refused")
    return np.frombuffer(data, dtype=_plain_dtype(dtype), count=1)[0]


def _numpy_reconstruct(cls, shape, dtype_code):
    """numpy's pickle first makes an empty array, then BUILD fills it: nothing is allocated
    here (a crafted shape would be), the array is made from BUILD's bytes."""
    if cls is not np.ndarray:
        raise CheckpointError("the file rebuilds a numpy subclass; refused")
    return _ArrayPlaceholder()


def _count_placeholders(value, depth: int = 0) -> int:
    """Arrays started by `_reconstruct` that no BUILD completed, anywhere in `value`."""
    if isinstance(value, _ArrayPlaceholder):
        return 1
    if depth > 100:
        raise CheckpointError("the file's objects are nested too deeply; refused")
    if isinstance(value, dict):
        return sum(_count_placeholders(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_count_placeholders(v, depth + 1) for v in value)
    return 0


def _array_from_state(state) -> np.ndarray:
    """The array numpy's BUILD state (version, shape, dtype, fortran, bytes) describes."""
    if not (isinstance(state, tuple) and len(state) == 5):
        raise CheckpointError("the file holds a numpy array of an unexpected form; refused")
    _, shape, dtype, fortran, data = state
    shape = _whole_numbers(shape, "shape")
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes) or any(n < 0 for n in shape):
        raise CheckpointError("the file holds a numpy array of an unexpected form; refused")
    dtype = _plain_dtype(dtype)
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected != len(data):
        raise CheckpointError(
            f"a numpy array in the file declares shape {shape} ({expected} bytes) but carries "
            f"{len(data)} bytes: damaged or crafted file"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def _dtype_from_state(dtype: np.dtype, state) -> np.dtype:
    """A dtype after BUILD: only the byte order may change (a new object, never the shared
    singleton numpy returns for plain types)."""
    if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
        raise CheckpointError("the file holds a numpy dtype of an unexpected form; refused")
    return dtype.newbyteorder(state[1]) if state[1] in ("<", ">") else dtype


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
    **{
        (f"{root}.multiarray", name): function
        for root in ("numpy.core", "numpy._core")  # numpy 1 and numpy 2 module names
        for name, function in _NUMPY_NAMES.items()
    },
}


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with a closed list of names and a restricted BUILD.

    The C unpickler cannot be told which objects BUILD may change; data.pkl is small, so the
    pure-Python one costs little. NEWOBJ is refused: a state dict never needs it.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(handle)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: Dict[str, np.ndarray] = {}
        self.file_size = os.path.getsize(path)

    def find_class(self, module: str, name: str):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        found = _ALLOWED.get((module, name))
        if found is None:
            raise CheckpointError(
                f"{self.path} asks to run {module}.{name} while loading; a weight file may hold "
                "only tensors, numbers, strings and containers, so it was refused and nothing "
                "in it was run"
            )
        return found

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, _ArrayPlaceholder):
            self.stack[-1] = _array_from_state(state)
        elif isinstance(target, np.dtype):
            self.stack[-1] = _dtype_from_state(target, state)
        elif isinstance(target, collections.OrderedDict) and not state:
            pass  # OrderedDict's reduction may carry an empty state
        else:
            raise CheckpointError(
                f"{self.path} asks to set the state of a {type(target).__name__} while loading; "
                "refused (a weight file only sets the state of numpy arrays)"
            )

    def load_newobj(self):
        raise CheckpointError(f"{self.path} asks to create an object with NEWOBJ; refused")

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj

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
            info = self.archive.getinfo(f"{self.prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self.path} lacks the data of storage {key}: damaged") from None
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > self.file_size:
            raise CheckpointError(
                f"{self.path}: storage {key} is compressed or declares {info.file_size} bytes "
                "in a smaller file; torch.save stores tensors uncompressed, so the file was "
                "refused before inflating it"
            )
        raw = self.archive.read(info)
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
            if archive.getinfo(pickles[0]).file_size > MAX_PICKLE_BYTES:
                raise CheckpointError(
                    f"{path}: its data.pkl declares more than {MAX_PICKLE_BYTES} bytes; a state "
                    "dict's is far smaller, so the file was refused"
                )
            with archive.open(pickles[0]) as raw:
                handle = io.BytesIO(raw.read(MAX_PICKLE_BYTES + 1))
            loaded = _RestrictedUnpickler(handle, archive, prefix, path).load()
            if _count_placeholders(loaded):
                raise CheckpointError(
                    f"{path} holds a numpy array without its data (a shape and no bytes): "
                    "damaged or crafted file"
                )
            return loaded
    except CheckpointError:
        raise
    except (MemoryError, RecursionError) as err:
        raise CheckpointError(
            f"cannot read {path}: it asks for more memory or nesting than a state dict needs "
            f"({type(err).__name__}); refused"
        ) from None
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
