"""One variable of a MATLAB v5 file, read with scipy after its structure and size are bounded.

The SYSU-MM01 authors' split files and feature files are MATLAB v5: a 128-byte header, then data
elements, each an 8-byte tag (type, byte count); type 15 is a zlib stream holding one element,
type 14 (miMATRIX) an array whose cells are arrays in turn. scipy inflates streams without a
bound, allocates every declared cell before reading it, and parses nested cells by recursion
(a file nested 200,000 deep ends the interpreter). So the file is walked here first, exactly as
scipy will read it, streaming through compressed elements without keeping them:

- top-level elements follow each other without padding (as scipy reads them), so an element
  whose byte count is not a multiple of 8 is refused rather than walked otherwise;
- what compressed elements inflate to is bounded in total (`max_inflated_bytes`);
- arrays nest at most `MAX_DEPTH` deep (the formats need three: a cell of cells of numbers);
- a cell array may declare no more cells than its bytes can hold, and at most `MAX_CELLS`;
- the numbers declared in total must fit the bound and half the memory available;
- the variable asked for must be of the expected kind (a cell array, or numeric).
"""

import zlib
from pathlib import Path

import numpy as np

from ddag.utils.memory import readable_bytes

MAX_DEPTH = 4
MAX_CELLS = 5_000_000
MATRIX, COMPRESSED, CELL_CLASS = 14, 15, 1
NUMERIC_CLASSES = set(
    range(4, 16)
)  # char, double, single, (u)int8..64: what scipy returns as arrays


class MatFileProblem(Exception):
    """Why a file is not a readable MATLAB v5 file of the expected form (one clause)."""


def read_mat_variable(
    path: Path, name: str, max_file_bytes: int, max_inflated_bytes: int, kind: str = "cell"
):
    """The array stored as `name` in the MATLAB v5 file `path` (a cell array, or numeric with
    `kind="numeric"`); MatFileProblem otherwise, before scipy parses anything it cannot bound."""
    import scipy.io

    size = path.stat().st_size
    if size > max_file_bytes:
        raise MatFileProblem(f"it has {size} bytes, more than the {max_file_bytes} accepted")
    found = check_structure(path.read_bytes(), max_inflated_bytes, wanted=(name, kind))
    if name not in found:
        raise MatFileProblem(f"it holds no variable '{name}' (found: {sorted(found) or 'none'})")
    if found[name] != kind:
        raise MatFileProblem(f"its variable '{name}' is {found[name]}, not a {kind} array")
    try:
        content = scipy.io.loadmat(
            str(path), squeeze_me=False, struct_as_record=True, variable_names=[name]
        )
    except (ValueError, TypeError, OSError, NotImplementedError, zlib.error, MemoryError) as err:
        raise MatFileProblem(f"it is not a readable MATLAB v5 file ({err})") from None
    return np.asarray(content[name])


def check_structure(data: bytes, max_inflated_bytes: int, wanted=None) -> dict:
    """{variable name: "cell" | "numeric"} of a v5 file, walked within the bounds of the module
    docstring; MatFileProblem at the first thing out of bounds. With `wanted` = (name, kind), a
    variable of that name and another kind is refused as soon as its class is read."""
    if len(data) < 128 or data[124:126] not in (b"\x00\x01", b"\x01\x00"):
        raise MatFileProblem("it is not a MATLAB v5 file (v7.3/HDF5 files are not read)")
    endian = "<" if data[126:128] == b"IM" else ">"
    budget = _Budget(max_inflated_bytes, wanted)
    variables, offset = {}, 128
    while offset + 8 <= len(data):
        kind, count = _tag_of(data[offset : offset + 8], endian)
        if count is None:
            raise MatFileProblem(f"it has a packed element at byte {offset} where arrays belong")
        body = data[offset + 8 : offset + 8 + count]
        if len(body) < count:
            raise MatFileProblem(f"its element at byte {offset} runs past the end of the file")
        if kind == COMPRESSED:
            stream = _Stream(_inflated_pieces(body, budget))
            inner, inner_count = stream.tag(endian)
            if inner != MATRIX or inner_count is None:
                raise MatFileProblem("a compressed element does not hold an array")
            name, cls = _matrix(stream, inner_count, 1, endian, budget)
            stream.finish()
        elif kind == MATRIX:
            if count % 8:
                raise MatFileProblem(
                    f"its element at byte {offset} has {count} bytes, not a multiple of 8: "
                    "MATLAB writes none such, and readers would disagree on where the next starts"
                )
            name, cls = _matrix(_Stream(iter([body])), count, 1, endian, budget)
        else:
            name, cls = None, None  # other top-level data: scipy skips it as well
        if name is not None:
            variables[name] = "cell" if cls == CELL_CLASS else "numeric"
        offset += 8 + count
    return variables


class _Budget:
    """Inflated bytes and declared numbers so far, against their bounds."""

    def __init__(self, max_inflated_bytes: int, wanted=None):
        self.max_inflated = max_inflated_bytes
        self.wanted = wanted
        self.inflated = 0
        self.numbers = 0
        self.cells = 0
        self.memory = readable_bytes()

    def add_numbers(self, nbytes: int) -> None:
        self.numbers += nbytes
        if self.numbers > min(self.max_inflated, self.memory):
            raise MatFileProblem(
                f"it declares more than {self.numbers} bytes of numbers, more than the "
                f"{min(self.max_inflated, self.memory)} that may be read here (half the free "
                "memory, or the bound for this kind of file)"
            )


def _inflated_pieces(stream: bytes, budget: _Budget):
    """The inflated bytes of a zlib stream in pieces of at most 1 MiB, within the budget."""
    inflater, pending = zlib.decompressobj(), stream
    try:
        while pending:
            piece = inflater.decompress(pending, 1 << 20)
            pending = inflater.unconsumed_tail
            budget.inflated += len(piece)
            if budget.inflated > budget.max_inflated:
                raise MatFileProblem(
                    f"its compressed elements inflate to more than {budget.max_inflated} bytes"
                )
            if piece:
                yield piece
            elif not pending:
                break
    except zlib.error as err:
        raise MatFileProblem(f"a compressed element is damaged ({err})") from None


class _Stream:
    """Sequential reads and skips over pieces of bytes, keeping only what is read."""

    def __init__(self, pieces):
        self.pieces, self.buffer, self.position = pieces, b"", 0

    def _fill(self, count: int) -> None:
        while len(self.buffer) < count:
            piece = next(self.pieces, None)
            if piece is None:
                raise MatFileProblem("an array element runs past the end of its data")
            self.buffer += piece

    def read(self, count: int) -> bytes:
        self._fill(count)
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        self.position += count
        return out

    def skip(self, count: int) -> None:
        while count:
            if not self.buffer:
                self._fill(1)
            step = min(count, len(self.buffer))
            self.buffer = self.buffer[step:]
            self.position += step
            count -= step

    def tag(self, endian: str):
        return _tag_of(self.read(8), endian)

    def finish(self) -> None:
        """Consume what is left (the stream's end is checked by inflating all of it)."""
        for _ in self.pieces:
            pass


def _tag_of(raw: bytes, endian: str):
    """(type, byte count) of an element tag; a packed (small) element's count is None and its
    4 data bytes are part of `raw`."""
    first = int.from_bytes(raw[:4], "little" if endian == "<" else "big")
    if first >> 16:
        return first & 0xFFFF, None
    return first, int.from_bytes(raw[4:8], "little" if endian == "<" else "big")


def _small_or_full(stream: _Stream, endian: str) -> bytes:
    """The data of the next sub-element (packed or padded to 8 bytes)."""
    raw = stream.read(8)
    first = int.from_bytes(raw[:4], "little" if endian == "<" else "big")
    if first >> 16:
        return raw[4 : 4 + (first >> 16)]
    count = int.from_bytes(raw[4:8], "little" if endian == "<" else "big")
    if count > 1 << 20:
        raise MatFileProblem(f"an array header element declares {count} bytes")
    data = stream.read(count)
    stream.skip(-count % 8)
    return data


def _matrix(stream: _Stream, count: int, depth: int, endian: str, budget: _Budget):
    """Walk one miMATRIX of `count` bytes; (its name, its class)."""
    if depth > MAX_DEPTH:
        raise MatFileProblem(f"its arrays nest more than {MAX_DEPTH} deep; the format needs 3")
    if count == 0:
        return "", 0
    end = stream.position + count
    flags = _small_or_full(stream, endian)
    cls = _class_of(flags, endian)
    dims = np.frombuffer(_small_or_full(stream, endian), dtype=f"{endian}i4")
    name = _small_or_full(stream, endian).decode("latin-1")
    if len(dims) < 2 or np.any(dims < 0):
        raise MatFileProblem(f"an array declares dimensions {dims.tolist()}")
    if depth == 1 and budget.wanted and budget.wanted[0] == name:
        kind = "cell" if cls == CELL_CLASS else "numeric"
        if kind != budget.wanted[1]:
            raise MatFileProblem(f"its variable '{name}' is {kind}, not a {budget.wanted[1]} array")
    cells = int(np.prod(dims.astype(object)))
    if cls == CELL_CLASS:
        budget.cells += cells
        if cells * 8 > end - stream.position or budget.cells > MAX_CELLS:
            raise MatFileProblem(
                f"a cell array declares {cells} cells, more than its bytes can hold or the "
                f"{MAX_CELLS} accepted"
            )
        for _ in range(cells):
            kind, inner = stream.tag(endian)
            if kind != MATRIX or inner is None:
                raise MatFileProblem("a cell holds something other than an array")
            _matrix(stream, inner, depth + 1, endian, budget)
            stream.skip(-inner % 8)
    elif cls in NUMERIC_CLASSES:
        budget.add_numbers(8 * cells)  # scipy may widen to 8 bytes per number
    else:
        raise MatFileProblem(
            f"it holds a MATLAB array of class {cls} (struct, object or sparse); the split and "
            "feature files hold cells of numbers only"
        )
    if stream.position > end:
        raise MatFileProblem("an array's parts run past the array's own byte count")
    stream.skip(end - stream.position)
    return name, cls


def _class_of(flags: bytes, endian: str) -> int:
    if len(flags) < 4:
        raise MatFileProblem("an array has no class flags")
    word = int.from_bytes(flags[:4], "little" if endian == "<" else "big")
    return word & 0xFF
