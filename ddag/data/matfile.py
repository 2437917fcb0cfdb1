"""One variable of a MATLAB v5 file, read with scipy after its size is bounded.

The SYSU-MM01 authors' split files and feature files are MATLAB v5 (cell arrays). A v5 file is a
128-byte header followed by data elements, each an 8-byte tag (type, byte count); type 15 is a
zlib stream, which scipy inflates without a bound. Streams are inflated here first, with one,
so a small crafted file cannot ask for gigabytes.
"""

import zlib
from pathlib import Path

import numpy as np


class MatFileProblem(Exception):
    """Why a file is not a readable MATLAB v5 file of the expected form (one clause)."""


def read_mat_variable(path: Path, name: str, max_file_bytes: int, max_inflated_bytes: int):
    """The array stored as `name` in the MATLAB v5 file `path`; MatFileProblem otherwise."""
    import scipy.io

    size = path.stat().st_size
    if size > max_file_bytes:
        raise MatFileProblem(f"it has {size} bytes, more than the {max_file_bytes} accepted")
    check_inflated_size(path.read_bytes(), max_inflated_bytes)
    try:
        content = scipy.io.loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except (ValueError, TypeError, OSError, NotImplementedError, zlib.error, MemoryError) as err:
        raise MatFileProblem(f"it is not a readable MATLAB v5 file ({err})") from None
    if name not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise MatFileProblem(f"it holds no variable '{name}' (found: {found or 'none'})")
    return np.asarray(content[name])


def check_inflated_size(data: bytes, max_inflated_bytes: int) -> None:
    """MatFileProblem unless `data` is a v5 file whose zlib elements inflate within the bound."""
    if len(data) < 128 or data[124:126] not in (b"\x00\x01", b"\x01\x00"):
        raise MatFileProblem("it is not a MATLAB v5 file (v7.3/HDF5 files are not read)")
    endian = "little" if data[126:128] == b"IM" else "big"
    offset, inflated = 128, 0
    while offset + 8 <= len(data):
        kind = int.from_bytes(data[offset : offset + 4], endian)
        if kind >> 16:  # small data element: type and byte count share the first 4 bytes
            offset += 8
            continue
        count = int.from_bytes(data[offset + 4 : offset + 8], endian)
        if kind == 15:
            inflated += _inflated_size(data[offset + 8 : offset + 8 + count], max_inflated_bytes)
            if inflated > max_inflated_bytes:
                raise MatFileProblem(
                    f"its compressed elements inflate to more than {max_inflated_bytes} bytes"
                )
            offset += 8 + count
        else:
            offset += 8 + count + (-count % 8)


def _inflated_size(stream: bytes, limit: int) -> int:
    """Bytes a zlib stream inflates to, counted in 1 MiB pieces and stopped past `limit`."""
    inflater, pending, total = zlib.decompressobj(), stream, 0
    try:
        while pending and total <= limit:
            total += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
    except zlib.error as err:
        raise MatFileProblem(f"a compressed element is damaged ({err})") from None
    return total
