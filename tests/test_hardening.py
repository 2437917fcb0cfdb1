"""Crafted and broken inputs: bounded cost, no poisoning of later loads, nothing overwritten.

Every file is made here. Cases that would allocate gigabytes if the check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import http.server
import json
import pickle
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from ddag.checkpoints.torch_files import load_torch_file
from ddag.config.run_config import run_config
from ddag.errors import CheckpointError, ConfigError, DatasetError
from ddag.tasks.steps.runtime import output_dir
from tests import torch_writer
from tests.bounded import run_bounded
from tests.conftest import TINY, compose_config
from tests.loopback import serving
from tests.test_run_cli import run_cli


def _refused(output: str, seconds: float, error: str = "CheckpointError", limit: float = 30.0):
    assert f"REFUSED {error}" in output, output[-3000:]
    assert seconds < limit, f"took {seconds:.1f} s"


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


# 2. Architectures read off tensors (task=convert) --------------------------------------------


def test_a_stray_block_index_does_not_build_a_hundred_thousand_blocks():
    from ddag.checkpoints.conversion import resnet_layout

    arrays = {"conv1.weight": np.zeros((4, 3, 7, 7), np.float32)}
    for stage in range(1, 5):
        for conv in ("conv1", "conv2"):
            arrays[f"layer{stage}.0.{conv}.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    assert resnet_layout(arrays)["layers"] == [1, 1, 1, 1]
    arrays["layer1.100000.conv1.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="numbered .* not 0..n-1"):
        resnet_layout(arrays)
    assert time.monotonic() - start < 1
    del arrays["layer1.100000.conv1.weight"]
    arrays["layer2.1.conv1.weight"] = np.zeros((4, 4, 3, 3), np.float32)  # conv2 absent
    with pytest.raises(CheckpointError, match="layer2.1.conv2.weight is missing"):
        resnet_layout(arrays)


# 3. A checkpoint's stored spec against its own tensors ---------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny DDAG checkpoint (two stems, IWPA, CGSA) and the spec it stores."""
    from ddag.checkpoints.format import write_checkpoint_file as save_checkpoint
    from ddag.models.architecture import build_network

    cfg = compose_config(TINY)
    spec = run_config(cfg).model
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(path, build_network(spec, 5), meta={"model": spec, "config": {}})
    return path, spec


CRAFTED_SPECS = {
    "layers": ("backbone", "layers", [10**6, 1, 1, 1]),
    "stem_channels": ("backbone", "stem_channels", 10**9),
    "widths": ("backbone", "widths", [16, 16, 32, 10**8]),
    "non_local_channels": ("backbone", "non_local_channels", 10**9),
    "num_parts": ("part_attention", "num_parts", 10**9),
    "num_heads": ("graph_attention", "num_heads", 10**6),
    "low_dim": (None, "low_dim", 10**9),
}


@pytest.mark.parametrize("case", sorted(CRAFTED_SPECS))
def test_a_stored_spec_that_does_not_match_its_tensors_is_refused_before_building(
    case, tiny_checkpoint, tmp_path
):
    from ddag.checkpoints.format import META_KEY
    from ddag.checkpoints.format import read_checkpoint_file as read_checkpoint

    source, spec = tiny_checkpoint
    node, key, value = CRAFTED_SPECS[case]
    crafted = json.loads(json.dumps(spec))
    (crafted[node] if node else crafted)[key] = value
    params, _ = read_checkpoint(source)
    path = tmp_path / "crafted.ckpt"
    import mindspore as ms

    entries = [{"name": n, "data": p} for n, p in params.items()]
    from ddag.checkpoints.format import DIGEST_KEY, parameter_digest

    digest = parameter_digest((n, p.asnumpy()) for n, p in params.items())
    meta = json.dumps({"model": crafted})
    ms.save_checkpoint(entries, str(path), append_dict={META_KEY: meta, DIGEST_KEY: digest})
    output, seconds = run_bounded(
        f"""
        from ddag.checkpoints.checkpointer import Checkpointer
        from ddag.errors import CheckpointError
        import time
        limit_memory(1500)
        start = time.monotonic()
        try:
            Checkpointer().load_network({str(path)!r})
            print("LOADED")
        except CheckpointError as err:
            print("REFUSED CheckpointError", err, "in", time.monotonic() - start)
        """
    )
    _refused(output, seconds, limit=90)
    assert "nothing was built" in output  # refused by the tensors or by the component's bound
    refusal_time = float(output.rsplit(" in ", 1)[1].split()[0])
    assert refusal_time < 1.0, output


def test_a_stored_input_size_out_of_range_is_refused():
    from ddag.checkpoints.meta import CheckpointMeta, InputSpec

    old = CheckpointMeta.from_dict({"config": {"loader": {"height": 288, "width": 144}}})
    assert old.input == InputSpec(288, 144)
    new = CheckpointMeta.from_dict({"format_version": 2, "input": {"height": 96, "width": 48}})
    assert new.input == InputSpec(96, 48)
    with pytest.raises(CheckpointError, match="stored input size"):
        CheckpointMeta.from_dict({"config": {"loader": {"height": 10**6, "width": 144}}})
    with pytest.raises(CheckpointError, match="stored input size"):
        CheckpointMeta.from_dict({"format_version": 2, "input": {"height": 10**6, "width": 9}})


# 4. Values that allocate: bounded at start-up ------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.part_attention.num_parts=1000000000", "num_parts must be between 1 and 64"),
        ("model.backbone.layers=[0,0,0,0]", "layers must"),
        ("model.backbone.widths=[16,16,32,100000000]", "widths, stem_channels"),
        ("model.graph_attention.num_heads=1000000", "num_heads=1000000 must be in 1..64"),
        ("model.low_dim=1000000000", "low_dim=1000000000"),
    ],
)
def test_component_values_that_would_allocate_are_refused_when_built(override, message):
    from ddag.models.architecture import build_network

    cfg = compose_config(TINY + [override])
    start = time.monotonic()
    with pytest.raises(ConfigError, match=message):
        build_network(run_config(cfg).model, 5)
    assert time.monotonic() - start < 2


# 5. Table manifests --------------------------------------------------------------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n"
    for i in range(7)
)
BAD_MANIFESTS = {
    "alias": (ALIAS_BOMB, "aliases"),
    "python_tag": ("name: x\nrows: !!python/object/apply:os.system ['true']\n", "not a valid"),
    "string_metrics": ("name: x\nmetrics: rank1\nrows: [{preset: p, protocol: q}]\n", "metrics"),
    "unknown_metric": ("name: x\nmetrics: [rank2]\nrows: [{preset: p, protocol: q}]\n", "rank2"),
    "no_rows": ("name: x\n", "'rows' is required"),
    "empty_rows": ("name: x\nrows: []\n", "rows is empty"),
    "row_not_mapping": ("name: x\nrows: [p]\n", "a row is a mapping"),
    "no_protocol": ("name: x\nrows: [{preset: p}]\n", "'protocol' is required"),
    "bad_seeds": ("name: x\nrows: [{preset: p, protocol: q, seeds: [a]}]\n", "seeds"),
    "bad_paper": ("name: x\nrows: [{preset: p, protocol: q, paper: {rank1: high}}]\n", "paper"),
    "typo": ("name: x\nrowz: []\nrows: [{preset: p, protocol: q}]\n", "did you mean 'rows'"),
    "scanner": ("name: [x\nrows: y\n", "not a valid"),
    "list_top": ("- a\n- b\n", "a mapping with name and rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_malformed_manifest_is_one_error_naming_the_problem(case, tmp_path):
    from ddag.tasks.table import load_manifest

    text, problem = BAD_MANIFESTS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=problem):
        load_manifest(str(path))
    assert time.monotonic() - start < 1


def test_interpolations_in_a_manifest_stay_text(tmp_path, monkeypatch):
    from ddag.tasks.table import load_manifest

    monkeypatch.setenv("HOME", "/secret/home")
    path = tmp_path / "m.yaml"
    path.write_text("name: '${oc.env:HOME}'\nrows: [{preset: p, protocol: q}]\n")
    assert load_manifest(str(path))["name"] == "${oc.env:HOME}"


# 6. Downloads ---------------------------------------------------------------------------------


class _Server(http.server.BaseHTTPRequestHandler):
    """Loopback answers that misbehave as the path says."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind = self.path.strip("/").split(".")[0]
        self.send_response(200)
        if kind == "endless":
            self.end_headers()
            try:
                while True:
                    self.wfile.write(bytes(1 << 16))
            except OSError:
                return
        if kind == "trickle":
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(40):
                time.sleep(0.1)
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
            return
        body = {"short": b"x" * 500, "long": b"y" * 2000, "html": b"<!DOCTYPE html><p>sign in"}
        announced = {"short": 1000, "long": 1000, "html": len(body["html"])}
        self.send_header("Content-Length", str(announced[kind]))
        self.end_headers()
        self.wfile.write(body[kind])


@pytest.fixture
def bad_server():
    with serving(handler=_Server) as (base, _):
        yield base


@pytest.mark.parametrize(
    "name, message",
    [
        ("endless.pth", "sent more than 1048576 bytes"),
        ("trickle.pth", "bytes/s, below"),
        ("short.pth", "sent 500 bytes where it announced 1000"),
        ("long.pth", "where it announced 1000"),
        ("html.pth", "answered with an HTML page"),
    ],
)
def test_a_misbehaving_download_is_stopped_and_nothing_is_kept(name, message, bad_server, tmp_path):
    from ddag.checkpoints.download import DownloadLimits, _download

    limits = DownloadLimits(max_bytes=1 << 20, grace_s=1.0, min_bytes_per_s=1000)
    target = tmp_path / name
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=message):
        _download(f"{bad_server}/{name}", target, "", limits=limits)
    assert time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []


def test_a_cached_download_that_fails_to_load_is_removed(tmp_path, monkeypatch):
    from ddag.checkpoints.download import read_downloaded

    monkeypatch.setenv("DDAG_CACHE", str(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir()
    (served / "weights.pth").write_bytes(b"not a zip")
    with serving(served) as (base, _):
        with pytest.raises(CheckpointError, match="was removed"):
            read_downloaded(f"{base}/weights.pth", load_torch_file)
    assert not list((tmp_path / "cache").rglob("weights.pth"))


# 7. Deep nesting and huge metadata are errors, not tracebacks --------------------------------


def test_deeply_nested_checkpoint_metadata_is_a_checkpoint_error(tiny_checkpoint, tmp_path):
    import mindspore as ms

    from ddag.checkpoints.format import META_KEY
    from ddag.checkpoints.format import read_checkpoint_file as read_checkpoint

    params, _ = read_checkpoint(tiny_checkpoint[0])
    path = tmp_path / "deep.ckpt"
    entries = [{"name": n, "data": p} for n, p in params.items()]
    ms.save_checkpoint(entries, str(path), append_dict={META_KEY: "[" * 200_000 + "]" * 200_000})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        read_checkpoint(path)


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


# 11. Packed SYSU arrays follow the images ----------------------------------------------------


def test_packed_sysu_arrays_are_not_used_after_the_images_changed(tmp_path):
    from ddag.data.datasets.sysu import SYSUDataset
    from ddag.data.prepare import prepare_sysu
    from tests.builders import sysu_tree

    root = sysu_tree(tmp_path / "SYSU")
    prepare_sysu(SYSUDataset(str(root), height=32, width=16))
    assert SYSUDataset(str(root), height=32, width=16).prepared_split() is not None
    for image in sorted((root / "cam1" / "0001").iterdir()):
        Image.new("RGB", (16, 32), (255, 0, 0)).save(image)
    assert SYSUDataset(str(root), height=32, width=16).prepared_split() is None
    split = SYSUDataset(str(root), height=32, width=16).train_split()
    first = [i for i, n in enumerate(split.visible.names) if "cam1/0001" in n][0]
    assert split.visible.load(first)[..., 0].min() > 200  # the new, red image


# 12. The doctor refuses RegDB test identities that differ between modalities ------------------


def test_the_regdb_doctor_refuses_test_identities_missing_from_one_modality(tmp_path):
    from ddag.data.datasets.regdb import RegDBDataset
    from tests.builders import regdb_tree

    root = regdb_tree(tmp_path / "RegDB")
    index = root / "idx" / "test_thermal_1.txt"
    lines = index.read_text().splitlines()
    dropped = lines[0].split()[1]
    index.write_text("\n".join(line for line in lines if line.split()[1] != dropped) + "\n")
    report = RegDBDataset(str(root)).check()
    assert any(f"label {dropped} (visible only)" in f.items for f in report.errors), report.text()


# 13. EXIF orientation --------------------------------------------------------------------------


def test_the_exif_orientation_of_a_jpeg_is_applied(tmp_path):
    from ddag.data.datasets.base import read_rgb

    pixels = np.zeros((20, 10, 3), np.uint8)
    pixels[:5] = 255  # white top rows
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    image.save(tmp_path / "turned.jpg", exif=exif, quality=100)
    shown = read_rgb(str(tmp_path / "turned.jpg"))
    assert shown.shape == (10, 20, 3)
    assert shown[:, -5:].mean() > 200 and shown[:, :5].mean() < 50  # the white band is right


# 14. MindSpore's own temporaries are cleaned --------------------------------------------------


def test_mindspore_temporaries_are_removed_on_save_and_on_a_failed_write(tmp_path, monkeypatch):
    import mindspore as ms
    from mindspore import nn

    from ddag.checkpoints import format as checkpoint

    stale = tmp_path / "last.ckpt.abc123.tmp.tmp"
    stale.write_bytes(b"half a checkpoint")
    checkpoint.write_checkpoint_file(tmp_path / "last.ckpt", nn.Dense(2, 2))
    assert not stale.exists() and (tmp_path / "last.ckpt").is_file()

    def full_disk(entries, name, **kwargs):
        (tmp_path / (name[: -len(".ckpt")] + ".tmp")).write_bytes(b"partial")
        raise RuntimeError("No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", full_disk)
    with pytest.raises(CheckpointError, match="could not write checkpoint"):
        checkpoint.write_checkpoint_file(tmp_path / "best.ckpt", nn.Dense(2, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# 15. A finished run, a dataset root or a file is never overwritten ---------------------------


def test_a_finished_run_dataset_root_or_file_is_refused_as_the_run_folder(tmp_path):
    finished = tmp_path / "finished"
    (finished / "checkpoints").mkdir(parents=True)
    (finished / "checkpoints" / "best.ckpt").write_bytes(b"last week's model")
    (finished / "results.json").write_text("[]")
    quick = ["task=prepare", "task.mode=check"]  # needs no preparation: returns at once
    refused = run_cli(*quick, f"hydra.run.dir={finished}")
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "already holds a run" in output, output[-2000:]
    assert "overwrite=true" in output and "task.resume=auto" in output
    assert (finished / "checkpoints" / "best.ckpt").read_bytes() == b"last week's model"
    assert not (finished / ".hydra").exists()
    dataset = tmp_path / "SYSU"
    for name in ("cam1", "cam3", "exp"):
        (dataset / name).mkdir(parents=True)
    refused = run_cli(*quick, f"hydra.run.dir={dataset}")
    assert refused.returncode == 1 and "is a dataset root" in refused.stdout + refused.stderr
    (tmp_path / "a_file").write_text("x")
    refused = run_cli(*quick, f"hydra.run.dir={tmp_path / 'a_file'}")
    assert refused.returncode == 1 and "is a file" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    allowed = run_cli(*quick, f"hydra.run.dir={finished}", "overwrite=true")
    assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-2000:]


def test_paths_output_dir_pointing_at_a_file_is_a_config_error(tmp_path):

    (tmp_path / "file").write_text("x")
    cfg = compose_config([], output_dir=tmp_path / "file")
    with pytest.raises(ConfigError, match="is a file"):
        output_dir(run_config(cfg))


# 16. Two preparations of one root ------------------------------------------------------------


def test_a_second_prepare_of_the_same_root_stops_instead_of_racing(tmp_path):
    from ddag.data.datasets.sysu import SYSUDataset
    from ddag.data.prepare import prepare_sysu, root_lock, save_atomic
    from tests.builders import sysu_tree

    root = sysu_tree(tmp_path / "SYSU")
    with root_lock(root):
        with pytest.raises(DatasetError, match="being prepared by another task=prepare"):
            prepare_sysu(SYSUDataset(str(root), height=32, width=16))
    # Temporary names are unique: writers of one file never share a temporary.
    target = tmp_path / "x.npy"
    threads = [
        threading.Thread(target=save_atomic, args=(target, np.full(1000, k))) for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert np.load(target).shape == (1000,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SYSU", "x.npy"]
