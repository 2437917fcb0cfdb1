"""Crafted PyTorch, safetensors and weight files: refused within bounded memory and time, no
poisoning of later loads, only finite floating weights (ddag/checkpoints/torch_files.py,
weight_files.py, format.load_into).

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import json
import pickle
import zipfile

import numpy as np
import pytest

from ddag.checkpoints.torch_files import load_torch_file
from ddag.errors import CheckpointError
from tests import torch_writer
from tests.bounded import refused as _refused
from tests.bounded import run_bounded

# 1. PyTorch files: views, compressed members, huge numpy shapes -------------------------------


def _bounded_torch_load(path, budget_mb=300):
    return run_bounded(
        f"""
        from ddag.checkpoints.torch_files import load_torch_file
        from ddag.errors import CheckpointError
        limit_memory({budget_mb})
        try:
            load_torch_file({str(path)!r})
            print("LOADED")
        except CheckpointError as err:
            print("REFUSED CheckpointError", err)
        """
    )


def test_a_tensor_view_repeating_its_storage_is_refused_within_memory(tmp_path):
    path = tmp_path / "stride0.pth"
    tiny = np.zeros(1, np.float32)  # 4 bytes viewed as 16384 x 16384 (1 GiB) with stride 0
    torch_writer.save({"w": torch_writer.Tensor(tiny, (16384, 16384), (0, 0))}, path)
    _refused(*_bounded_torch_load(path))


def test_a_deflated_storage_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "deflated.pth"
    torch_writer.save({"w": torch_writer.Tensor(np.zeros(4, np.float32))}, path)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bomb, "w") as out:
        for info in source.infolist():
            if info.filename.endswith("data/0"):  # 512 MiB of zeros, about 0.5 MB deflated
                deflated = zipfile.ZipInfo(info.filename)
                deflated.compress_type = zipfile.ZIP_DEFLATED
                with out.open(deflated, "w") as member:
                    for _ in range(512):
                        member.write(bytes(1 << 20))
            else:
                out.writestr(info, source.read(info))
    assert bomb.stat().st_size < 8 << 20
    output, seconds = _bounded_torch_load(bomb)
    _refused(output, seconds)
    assert "compressed" in output


class _Reduce:
    """Pickles as a call of `function(*args)` by name, as a crafted file would."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def test_numpy_arrays_are_built_from_their_bytes_not_from_declared_shapes(tmp_path):
    from numpy.core.multiarray import _reconstruct

    huge = _Reduce(_reconstruct, (np.ndarray, (1 << 43,), b"b"))  # 8 TiB if allocated
    path = tmp_path / "huge.pth"
    torch_writer.save({}, path, extra_pickle=pickle.dumps({"w": huge}, protocol=2))
    _refused(*_bounded_torch_load(path))
    lying = np.zeros(2, np.int8)
    state = (1, (1 << 34,), np.dtype(np.int8), False, lying.tobytes())  # 16 GiB declared
    path = tmp_path / "lying.pth"
    torch_writer.save({}, path, extra_pickle=_pickle_with_build(lying, state))
    output, seconds = _bounded_torch_load(path)
    _refused(output, seconds)
    assert "declares shape (17179869184,)" in output


def _pickle_with_build(array, state) -> bytes:
    """numpy's own pickle of `array` in a dict, with its BUILD state replaced by `state`."""

    class Crafted:
        def __reduce__(self):
            function, args, _ = array.__reduce__()
            return function, args, state

    return pickle.dumps({"w": Crafted()}, protocol=2)


def _safetensors(path, header: dict, data: bytes):
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


def test_safetensors_headers_are_checked_against_the_file(tmp_path):
    from ddag.checkpoints.weight_files import read_weights

    past = _safetensors(
        tmp_path / "past.safetensors",
        {"w": {"dtype": "F32", "shape": [1 << 20], "data_offsets": [0, 4 << 20]}},
        bytes(16),
    )
    with pytest.raises(CheckpointError, match="past the end of the data"):
        read_weights(past)
    wrong = _safetensors(
        tmp_path / "wrong.safetensors",
        {"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 16]}},
        bytes(16),
    )
    with pytest.raises(CheckpointError, match="needs 4294967296 bytes"):
        read_weights(wrong)
    f8 = _safetensors(
        tmp_path / "f8.safetensors",
        {"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}},
        bytes(4),
    )
    with pytest.raises(CheckpointError, match="dtype 'F8_E4M3', which ddag does not read"):
        read_weights(f8)
    empty = _safetensors(
        tmp_path / "empty.safetensors",
        {"w": {"dtype": "F32", "shape": [0, 1 << 40], "data_offsets": [0, 0]}},
        b"",
    )
    assert read_weights(empty)["w"].shape == (0, 1 << 40)  # nothing to allocate
    claims = tmp_path / "claims.safetensors"
    claims.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="header claims 1099511627776 bytes"):
        read_weights(claims)


# 8. A refused pickle does not change how the next file loads ---------------------------------


def test_a_refused_pickle_cannot_retype_the_next_file(tmp_path):
    crafted = b"\x80\x02ctorch\nFloatStorage\n}X\x04\x00\x00\x00nameX\x0b\x00\x00\x00ByteStoragesb."
    bad = tmp_path / "bad.pth"
    torch_writer.save({}, bad, extra_pickle=crafted)
    with pytest.raises(CheckpointError, match="asks to set the state of a _StorageType"):
        load_torch_file(bad)
    good = tmp_path / "good.pth"
    values = np.arange(6, dtype=np.float32).reshape(2, 3) + 0.5
    torch_writer.save(torch_writer.tensors({"w": values}), good)
    loaded = load_torch_file(good)["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values)


# 9-10. Weights must be finite floating values; offsets and object arrays ----------------------


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", "NaN or infinite"),
        ("complex", "complex64 values for a floating parameter"),
        ("bool", "bool values"),
        ("int8", "int8 values"),
    ],
)
def test_weights_must_be_finite_and_floating(kind, message):
    import mindspore as ms
    from mindspore import nn

    from ddag.checkpoints.format import load_into

    cell = nn.Dense(3, 2)
    value = {
        "nan": np.full((2, 3), np.nan, np.float32),
        "complex": np.ones((2, 3), np.complex64),
        "bool": np.ones((2, 3), bool),
        "int8": np.ones((2, 3), np.int8),
    }[kind]
    before = cell.weight.asnumpy().copy()
    with pytest.raises(CheckpointError, match=message) as err:
        load_into(cell, {"weight": value, "bias": np.zeros(2, np.float32)})
    assert "weight" in str(err.value)
    np.testing.assert_array_equal(cell.weight.asnumpy(), before)  # nothing was copied
    assert isinstance(ms.Tensor(before), ms.Tensor)


def test_negative_offsets_and_object_arrays_are_refused(tmp_path):
    path = tmp_path / "offset.pth"
    torch_writer.save({"w": torch_writer.Tensor(np.arange(4, dtype=np.float32), (), (), -1)}, path)
    with pytest.raises(CheckpointError, match="negative"):
        load_torch_file(path)
    newobj = b"\x80\x02}X\x01\x00\x00\x00wcnumpy\nndarray\nK\x02\x85X\x01\x00\x00\x00O\x86\x81s."
    path = tmp_path / "newobj.pth"
    torch_writer.save({}, path, extra_pickle=newobj)
    with pytest.raises(CheckpointError, match="NEWOBJ"):
        load_torch_file(path)
