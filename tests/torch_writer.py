"""Writes files in PyTorch's `torch.save` zip format without torch, for the weight-loading tests.

The layout is torch's (>= 1.6): `archive/data.pkl` (protocol 2 pickle whose tensors are
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` with the
storage as a persistent reference `('storage', torch.FloatStorage, key, 'cpu', numel)`),
`archive/data/<key>` (raw little-endian bytes), `archive/byteorder`, `archive/version`. Pickling
names torch's callables, so a stand-in `torch` module is put in sys.modules while writing.
"""

import collections
import io
import pickle
import sys
import types
import zipfile
from unittest import mock

import numpy as np

STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.uint8): "ByteStorage",
}


class Tensor:
    """A tensor to write: `base` is the storage's data, viewed with (offset, shape, strides)."""

    def __init__(self, base: np.ndarray, shape=None, stride=None, offset=0):
        self.base = np.ascontiguousarray(base).reshape(-1)
        self.shape = tuple(base.shape if shape is None else shape)
        if stride is None:
            stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        self.stride, self.offset = tuple(stride), offset


def _stand_in_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    return torch, utils


def tensors(arrays: dict) -> collections.OrderedDict:
    """A state dict: every array as a Tensor, in order."""
    return collections.OrderedDict((k, Tensor(v)) for k, v in arrays.items())


class _Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


def save(obj, path, extra_pickle: bytes = None) -> None:
    """Write `obj` (containers of `Tensor`s, numpy arrays and plain values) like torch.save.

    `Tensor`s become torch tensors, numpy arrays stay numpy arrays (as in the reference code's
    checkpoints, whose 'cmc' is one); `extra_pickle` replaces data.pkl (for crafted files).
    """
    torch, utils = _stand_in_torch()
    storages = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, _Storage):
                return ("storage", value.cls, value.key, "cpu", value.numel)
            return None

        def reducer_override(self, value):
            if not isinstance(value, Tensor):
                return NotImplemented
            key = str(len(storages))
            storages[key] = value.base
            cls = getattr(torch, STORAGE_NAMES[value.base.dtype])
            storage = _Storage(key, cls, value.base.size)
            hooks = collections.OrderedDict()
            args = (storage, value.offset, value.shape, value.stride, False, hooks)
            return utils._rebuild_tensor_v2, args

    buffer = io.BytesIO()
    with mock.patch.dict(sys.modules, {"torch": torch, "torch._utils": utils}):
        Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", extra_pickle or buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, data in storages.items():
            archive.writestr(
                f"archive/data/{key}", data.astype(data.dtype.newbyteorder("<")).tobytes()
            )
