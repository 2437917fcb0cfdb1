"""Crafted MATLAB v5 and .npz feature files are refused within bounded memory and time, before
scipy or numpy parse them (ddag/data/matfile.py, ddag/data/feature_files.py); each case runs
in a child under an address-space limit (tests/bounded.py)."""

import struct
import zlib

import numpy as np
import pytest

from tests.bounded import refused, run_bounded

HEADER = b"MATLAB 5.0 MAT-file, crafted".ljust(124) + b"\x00\x01IM"


def _element(kind: int, data: bytes, pad: bool = True) -> bytes:
    body = data + (bytes(-len(data) % 8) if pad else b"")
    return struct.pack("<II", kind, len(data)) + body


def _array_header(cls: int, dims, name: bytes) -> bytes:
    flags = _element(6, struct.pack("<II", cls, 0))
    return flags + _element(5, struct.pack(f"<{len(dims)}i", *dims)) + _element(1, name)


def _compressed_zeros(prefix: bytes, megabytes: int) -> bytes:
    packer, zeros = zlib.compressobj(9), bytes(1 << 20)
    stream = packer.compress(prefix) + b"".join(packer.compress(zeros) for _ in range(megabytes))
    return _element(15, stream + packer.flush(), pad=False)


def _refused_in_child(path, reader: str, budget_mb: int = 400):
    output, seconds = run_bounded(
        f"""
        from pathlib import Path
        from ddag.errors import DatasetError
        limit_memory({budget_mb})
        try:
            {reader}
            print("LOADED")
        except DatasetError as err:
            print("REFUSED DatasetError", err)
        """
    )
    refused(output, seconds, "DatasetError", limit=60)
    return output


SPLIT = "from ddag.data.sysu_splits import read_official_splits; read_official_splits(Path({!r}))"
FEATURES = "from ddag.data.feature_files import read_features; read_features({!r})"


def test_a_misaligned_element_cannot_hide_a_compressed_bomb(tmp_path):
    # 68 bytes: the walk would pad to 72 where scipy does not, and miss the stream after it.
    odd = _element(14, _array_header(6, [1, 1], b"x") + _element(9, bytes(8)) + bytes(4), pad=False)
    bomb = _compressed_zeros(struct.pack("<II", 14, 1 << 31), 3200)  # 3.2 GB of zeros
    (tmp_path / "rand_perm_cam.mat").write_bytes(HEADER + odd + bomb)
    output = _refused_in_child(tmp_path, SPLIT.format(str(tmp_path)))
    assert "not a multiple of 8" in output


def test_cells_nested_two_hundred_thousand_deep_are_refused_without_a_crash(tmp_path):
    level = _array_header(1, [1, 1], b"")
    sizes, inner = [], _element(14, b"")  # innermost: an empty array
    length = len(inner)
    for _ in range(200_000):
        sizes.append(len(level) + length)
        length = 8 + sizes[-1]
    head = b"".join(struct.pack("<II", 14, size) + level for size in reversed(sizes))
    top = _array_header(1, [1, 1], b"feature")
    body = struct.pack("<II", 14, len(top) + len(head) + len(inner)) + top + head + inner
    packer = zlib.compressobj(9)
    (tmp_path / "feat_cam1.mat").write_bytes(
        HEADER + _element(15, packer.compress(body) + packer.flush(), pad=False)
    )
    output = _refused_in_child(tmp_path / "feat_cam1.mat", FEATURES.format(str(tmp_path / "feat")))
    assert "nest more than" in output


def test_a_small_file_declaring_half_a_billion_cells_is_refused(tmp_path):
    cells = _element(14, _array_header(1, [500_000_000, 1], b"feature"))
    (tmp_path / "feat_cam1.mat").write_bytes(HEADER + cells)
    assert (tmp_path / "feat_cam1.mat").stat().st_size < 2000
    output = _refused_in_child(tmp_path, FEATURES.format(str(tmp_path / "feat")))
    assert "declares 500000000 cells" in output


def test_a_feature_file_of_the_wrong_kind_is_refused_before_it_is_inflated(tmp_path):
    numbers = _array_header(6, [1, 400_000_000], b"feature") + struct.pack("<II", 9, 3_200_000_000)
    start = struct.pack("<II", 14, len(numbers) + 3_200_000_000) + numbers
    (tmp_path / "feat_cam1.mat").write_bytes(HEADER + _compressed_zeros(start, 3200))
    output = _refused_in_child(tmp_path, FEATURES.format(str(tmp_path / "feat")))
    assert "is numeric, not a cell array" in output


def test_npz_headers_are_checked_against_their_members_and_memory(tmp_path):
    import zipfile

    crafted = tmp_path / "crafted.npz"
    with zipfile.ZipFile(crafted, "w") as archive:
        with archive.open("fc.npy", "w") as member:  # a header claiming more rows than it holds
            header = {"descr": "<f4", "fortran_order": False, "shape": (9, 4)}
            np.lib.format.write_array_header_1_0(member, header)
            member.write(np.zeros((2, 4), np.float32).tobytes())
    output = _refused_in_child(crafted, FEATURES.format(str(crafted)))
    assert "declares shape (9, 4)" in output
    zeros = tmp_path / "zeros.npz"
    _zeros_npz(zeros, (16_384, 8_192))  # 1 GiB declared, honestly, in a 1 MB file
    output = _refused_in_child(zeros, FEATURES.format(str(zeros)), budget_mb=1500)
    assert "more than the" in output and "half the free memory" in output


def _zeros_npz(path, shape):
    """An .npz whose `fc` member honestly holds zeros of `shape` (float64), written in pieces."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("fc.npy", "w", force_zip64=True) as member:
            header = {"descr": "<f8", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            piece = bytes(1 << 20)
            for _ in range(shape[0] * shape[1] * 8 >> 20):
                member.write(piece)
        for name, value in (("names", np.array(["a"])), ("ids", np.array([1]))):
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, value)


@pytest.mark.parametrize("kind", ["cell", "numeric"])
def test_honest_files_still_read(tmp_path, kind):
    import scipy.io

    from ddag.data.matfile import read_mat_variable

    value = np.empty((2, 1), dtype=object) if kind == "cell" else np.arange(6.0).reshape(2, 3)
    if kind == "cell":
        value[0, 0], value[1, 0] = np.ones((2, 3)), np.zeros((0, 0))
    scipy.io.savemat(str(tmp_path / "x.mat"), {"v": value}, do_compression=kind == "cell")
    read = read_mat_variable(tmp_path / "x.mat", "v", 1 << 20, 1 << 20, kind)
    assert read.shape == (2, 1 if kind == "cell" else 3)


@pytest.mark.parametrize(
    "cell, message",
    [
        (np.eye(2, dtype=bool), "real floating"),
        (np.ones((2, 3), np.int32), "real floating"),
        (np.ones((2, 3)) * (1 + 2j), "real floating"),
    ],
)
def test_feature_cells_must_be_real_floating_matrices(tmp_path, cell, message):
    from ddag.data.feature_files import read_features
    from ddag.errors import DatasetError
    from tests.builders import write_sysu_mat_features

    good = np.ones((2, 3))
    features = {cam: {1: good, 2: good} for cam in range(1, 7)}
    features[3] = {1: cell, 2: good}
    write_sysu_mat_features(str(tmp_path / "feat"), features)
    with pytest.raises(DatasetError, match=message):
        read_features(str(tmp_path / "feat"))


def _npz(path, **changes):
    arrays = {
        "fc": np.ones((2, 4), np.float32),
        "names": np.array(["a", "b"]),
        "ids": np.array([1, 2]),
        "cams": np.array([1, 3]),
        "modality": np.array(["visible", "thermal"]),
    }
    arrays.update(changes)
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "key, value",
    [
        ("ids", np.array(3)),
        ("ids", np.array(["1", "2"])),
        ("names", np.array([1, 2])),
        ("modality", np.array([["visible"], ["thermal"]])),
    ],
)
def test_npz_columns_are_checked_with_the_key_named(tmp_path, key, value):
    from ddag.data.feature_files import read_features
    from ddag.errors import DatasetError

    with pytest.raises(DatasetError, match=f"'{key}' must be (one string or )?a 1-D array"):
        read_features(_npz(tmp_path / "f.npz", **{key: value}))


def test_npz_files_of_one_modality_must_share_their_feature_widths(tmp_path):
    from ddag.data.feature_files import read_features
    from ddag.errors import DatasetError

    def write(name, width, modality):
        return _npz(
            tmp_path / f"{name}.npz",
            fc=np.ones((2, width), np.float32),
            names=np.array([f"{name}a", f"{name}b"]),
            modality=np.array(modality),
        )

    paths = [write("v1", 4, "visible"), write("v2", 5, "visible"), write("t", 4, "thermal")]
    with pytest.raises(DatasetError, match=r"visible files' FC features have different widths"):
        read_features(paths)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"fc": np.ones((2, 0), np.float32)}, "at least one column"),
        ({"names": np.array(["a", "a"])}, "'a' appears more than once"),
    ],
)
def test_npz_features_without_columns_or_with_repeated_images_are_refused(
    tmp_path, changes, message
):
    from ddag.data.feature_files import read_features
    from ddag.errors import DatasetError

    with pytest.raises(DatasetError, match=message):
        read_features(_npz(tmp_path / "f.npz", **changes))


def test_features_with_no_name_in_common_are_refused_not_scored_empty(tmp_path):
    from ddag.data.feature_files import read_features
    from ddag.errors import EvaluationError
    from ddag.evaluation.evaluator import evaluate_features
    from ddag.evaluation.protocols import CrossModalProtocol

    visible = _npz(tmp_path / "v.npz", modality=np.array("visible"))
    thermal_path = tmp_path / "t.npz"
    np.savez(  # FC_att only, where the visible file has FC only
        thermal_path,
        fc_att=np.ones((2, 4), np.float32),
        names=np.array(["c", "d"]),
        ids=np.array([1, 2]),
        cams=np.array([3, 3]),
        modality=np.array("thermal"),
    )
    features, split = read_features([visible, str(thermal_path)])
    with pytest.raises(EvaluationError, match="no name in common"):
        evaluate_features(features, split, [CrossModalProtocol("visible", "thermal")])


def test_fifteen_thousand_rows_per_modality_are_scored_within_a_few_hundred_mb(tmp_path):
    # The full 15,000 x 15,000 distance matrix alone is 1.8 GB: it must be ranked in blocks.
    rows, rng = 15_000, np.random.default_rng(0)
    ids = np.arange(rows) // 10
    centres = rng.normal(size=(rows // 10, 16))
    paths = []
    for modality, cam in (("visible", 1), ("thermal", 3)):
        paths.append(
            _npz(
                tmp_path / f"{modality}.npz",
                fc=(centres[ids] + 0.1 * rng.normal(size=(rows, 16))).astype(np.float32),
                names=np.array([f"{modality}{i}" for i in range(rows)]),
                ids=ids,
                cams=np.full(rows, cam),
                modality=np.array(modality),
            )
        )
    output, seconds = run_bounded(
        f"""
        from ddag.data.feature_files import read_features
        from ddag.evaluation.evaluator import evaluate_features
        from ddag.evaluation.protocols import CrossModalProtocol
        limit_memory(500)
        features, split = read_features({paths!r})
        (record,) = evaluate_features(features, split, [CrossModalProtocol("visible", "thermal")])
        print("SCORED", record.mean["rank1"], record.mean["mAP"])
        """,
        timeout=300,
    )
    assert "SCORED" in output, output[-3000:]
    rank1, mean_ap = (float(x) for x in output.split("SCORED")[1].split()[:2])
    assert rank1 > 0.99 and mean_ap > 0.99  # each identity's images sit around its own centre
