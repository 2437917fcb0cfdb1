"""Weights from the PyTorch world: .pth and .safetensors read as data, names mapped, loaded
strictly; crafted pickles refused without running; URLs downloaded once and sha256-checked."""

import hashlib
import json
import pickle
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from safetensors.numpy import save_file

from ddag.checkpoints.checkpointer import Checkpointer, InitSettings
from ddag.checkpoints.conversion import reference_ddag_network, resnet_layout
from ddag.checkpoints.download import resolve_weights
from ddag.checkpoints.meta import InputSpec
from ddag.checkpoints.torch_files import load_torch_file
from ddag.checkpoints.weight_files import read_weights
from ddag.config.run_config import run_config
from ddag.errors import CheckpointError, ConfigError
from ddag.models.backbones.resnet import ResNet
from ddag.models.backbones.resnet_ibn import ResNetIBN
from ddag.models.ddag import DDAG
from ddag.tasks import convert
from tests import torch_writer
from tests.conftest import compose_config, load_json, reference_data
from tests.loopback import serving

TORCHVISION_PREFIX = "base_resnet.base."  # the reference wraps a torchvision-named ResNet-50


def _manifest():
    return load_json(reference_data("pt_state_dict_manifest_regdb.json"))["entries"]


def _initialised(recipe, weights, **init):
    """A DDAG network of `recipe` whose backbone `Checkpointer.initialise` loaded from `weights`."""
    network = DDAG(recipe, 4)
    Checkpointer().initialise(network, InitSettings(str(weights), **init))
    return network


def _random_state(entries, seed=0):
    """Exact names and shapes, random values; BN variances positive, counters integer."""
    rng = np.random.default_rng(seed)
    state = {}
    for entry in entries:
        shape = tuple(entry["shape"])
        if entry["dtype"] == "int64":
            state[entry["name"]] = np.array(7, np.int64).reshape(shape)
        elif entry["name"].endswith("running_var"):
            state[entry["name"]] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            state[entry["name"]] = rng.normal(0, 0.02, shape).astype(np.float32)
    return state


def _torchvision_resnet50(seed=0):
    entries = [
        dict(e, name=e["name"][len(TORCHVISION_PREFIX) :])
        for e in _manifest()
        if e["name"].startswith(TORCHVISION_PREFIX)
    ]
    entries += [
        {"name": "fc.weight", "shape": [1000, 2048], "dtype": "float32"},
        {"name": "fc.bias", "shape": [1000], "dtype": "float32"},
    ]
    return _random_state(entries, seed)


NETWORK_PARTS = ("visible_stem.", "thermal_stem.", "shared_stem.", "trunk.")


def _assert_backbone_loaded(cell, state, prefix=""):
    """Every parameter of `cell` equals its torchvision entry (BN names translated back)."""
    back = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean"}
    back["moving_variance"] = "running_var"
    for param in cell.get_parameters():
        own = param.name.split(".", 1)[1] if param.name.startswith(NETWORK_PARTS) else param.name
        module, _, leaf = own.rpartition(".")
        name = f"{module.replace('down_sample_layer', 'downsample')}.{back.get(leaf, leaf)}"
        np.testing.assert_array_equal(param.asnumpy(), state[prefix + name], err_msg=name)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_torchvision_resnet50_loads_strictly_into_both_stems_and_the_trunk(tmp_path, suffix):
    state = _torchvision_resnet50()
    path = tmp_path / f"resnet50{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch_writer.save(torch_writer.tensors(state), path)
    network = _initialised(ResNet(), path, strict=True)
    for part in (network.visible_stem, network.thermal_stem, network.trunk):
        _assert_backbone_loaded(part, state)
    assert resnet_layout(read_weights(path))["layers"] == [3, 4, 6, 3]


def test_a_resnet_of_another_depth_is_refused_by_a_strict_load(tmp_path):
    state = _torchvision_resnet50()
    dropped = {k: v for k, v in state.items() if not k.startswith("layer3.5.")}
    path = tmp_path / "resnet_wrong.safetensors"
    save_file(dropped, str(path))
    with pytest.raises(CheckpointError, match="missing from checkpoint.*layer3.5"):
        _initialised(ResNet(), path)


def test_torch_reader_follows_offsets_strides_and_shared_storages(tmp_path):
    base = np.arange(24, dtype=np.float32)
    obj = {
        "transposed": torch_writer.Tensor(base, shape=(4, 6), stride=(1, 4)),
        "offset_view": torch_writer.Tensor(base, shape=(2, 3), stride=(3, 1), offset=6),
        "scalar": torch_writer.Tensor(np.array([5], np.int64), shape=(), stride=()),
        "half": torch_writer.Tensor(np.array([1.5, -2.0], np.float16)),
        "epoch": 12,
        "cmc": np.linspace(0, 1, 5),  # numpy arrays stay numpy arrays
        "mAP": np.float64(0.25),
    }
    path = tmp_path / "views.pth"
    torch_writer.save(obj, path)
    loaded = load_torch_file(path)
    np.testing.assert_array_equal(loaded["transposed"], base.reshape(6, 4).T)
    np.testing.assert_array_equal(loaded["offset_view"], base[6:12].reshape(2, 3))
    assert loaded["scalar"].shape == () and int(loaded["scalar"]) == 5
    assert loaded["half"].dtype == np.float16 and loaded["half"][1] == -2.0
    assert loaded["epoch"] == 12 and loaded["mAP"] == 0.25
    np.testing.assert_array_equal(loaded["cmc"], np.linspace(0, 1, 5))


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


class _EvalCode:
    def __reduce__(self):
        return eval, ("__import__('pathlib').Path('VICTIM').touch()",)


@pytest.mark.parametrize("payload", ["system", "eval", "nested"])
def test_a_pth_with_a_malicious_pickle_is_refused_without_running_it(tmp_path, payload):
    victim = tmp_path / "VICTIM"
    bad = {"system": _RunsCode(f"touch {victim}"), "eval": _EvalCode()}
    obj = {"net": {"conv1.weight": bad.get(payload, _RunsCode(f"touch {victim}"))}}
    if payload == "nested":
        obj = [{"state_dict": obj}]
    path = tmp_path / "evil.pth"
    torch_writer.save({}, path, extra_pickle=pickle.dumps(obj, protocol=2))
    with pytest.raises(CheckpointError, match="refused and nothing in it was run"):
        read_weights(path)
    with pytest.raises(CheckpointError, match="refused"):
        _initialised(ResNet(), path)
    assert not victim.exists() and not Path("VICTIM").exists()


def test_damaged_and_foreign_weight_files_are_named(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"a": 1}))  # pre-1.6 files are not zips
    with pytest.raises(CheckpointError, match="not a PyTorch zip checkpoint"):
        read_weights(legacy)
    truncated = tmp_path / "truncated.safetensors"
    save_file({"conv1.weight": np.ones((4, 3, 7, 7), np.float32)}, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match="damaged .safetensors"):
        read_weights(truncated)
    outside = tmp_path / "outside.pth"
    storage = torch_writer.Tensor(np.zeros(4, np.float32), shape=(4, 4), stride=(4, 1))
    torch_writer.save({"w": storage}, outside)
    with pytest.raises(CheckpointError, match="outside its storage"):
        read_weights(outside)
    with pytest.raises(CheckpointError, match="unknown weight format"):
        read_weights(_touch(tmp_path / "w.h5"))


def _touch(path):
    path.write_bytes(b"x")
    return path


REFERENCE_PAIRS = {
    "visible_stem.conv1.weight": "visible_module.visible.conv1.weight",
    "thermal_stem.bn1.gamma": "thermal_module.thermal.bn1.weight",
    "trunk.layer3.4.bn2.moving_variance": "base_resnet.base.layer3.4.bn2.running_var",
    "trunk.layer1.0.down_sample_layer.0.weight": "base_resnet.base.layer1.0.downsample.0.weight",  # noqa: E501
    "trunk.layer4.0.down_sample_layer.1.beta": "base_resnet.base.layer4.0.downsample.1.bias",
    "bottleneck.gamma": "bottleneck.weight",
    "classifier.weight": "classifier.weight",
    "part_attention.fc1.weight": "wpa.fc1.0.weight",
    "part_attention.fc1.bias": "wpa.fc1.0.bias",
    "part_attention.fc3.weight": "wpa.fc3.weight",
    "part_attention.gate": "wpa.gate",
    "part_attention.bottleneck.moving_mean": "wpa.bottleneck.running_mean",
    "graph_attention.heads.2.W": "attention_2.W",
    "graph_attention.heads.0.a": "attention_0.a",
    "graph_attention.out_attention.W": "out_att.W",
}


def test_ibn_a_weights_load_by_their_own_names():
    recipe = ResNetIBN(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), stem_channels=8)
    trunk = recipe.make_trunk()
    names = {p.name for p in trunk.get_parameters()}
    assert {"layer1.0.bn1.IN.gamma", "layer1.0.bn1.BN.moving_mean", "layer4.0.bn1.gamma"} <= names
    from ddag.checkpoints.names import torch_to_mindspore_names

    torch_names = {
        "layer1.0.bn1.IN.weight": "layer1.0.bn1.IN.gamma",
        "layer1.0.bn1.BN.running_var": "layer1.0.bn1.BN.moving_variance",
        "layer4.0.downsample.1.weight": "layer4.0.down_sample_layer.1.gamma",
    }
    state = {k: np.ones(2, np.float32) for k in torch_names}
    state["layer1.0.bn1.BN.running_mean"] = np.zeros(2, np.float32)
    state["layer4.0.downsample.1.running_mean"] = np.zeros(2, np.float32)
    renamed = torch_to_mindspore_names(state)
    assert set(torch_names.values()) <= set(renamed)


@pytest.fixture
def weight_server(tmp_path):
    """A loopback HTTP server over a folder with one weight file; yields (url, sha256)."""
    folder = tmp_path / "served"
    folder.mkdir()
    save_file(_torchvision_resnet50(seed=3), str(folder / "resnet50-test.safetensors"))
    digest = hashlib.sha256((folder / "resnet50-test.safetensors").read_bytes()).hexdigest()
    with serving(folder) as (base, server):
        yield f"{base}/resnet50-test.safetensors", digest, server


def test_a_url_is_downloaded_once_checked_and_used_from_the_cache(tmp_path, weight_server):
    url, digest, server = weight_server
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="has sha256"):
        resolve_weights(url, cache_dir=cache, sha256="0" * 64)
    assert not list(cache.rglob("*.safetensors*"))  # a download that failed its check is gone
    path = resolve_weights(url, cache_dir=cache, sha256=digest[:8])
    assert path.name == "resnet50-test.safetensors" and path.is_file()
    assert path.parent.parent == cache  # one sub-folder per URL
    other = url.replace("resnet50-test", "sub/../resnet50-test")  # another URL, same file name
    assert resolve_weights(other, cache_dir=cache, sha256=digest) != path
    server.shutdown()  # the second time the cache answers
    assert resolve_weights(url, cache_dir=cache, sha256=digest) == path
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(CheckpointError, match="has sha256"):
        resolve_weights(url, cache_dir=cache, sha256=digest)


def test_a_backbone_loads_from_a_url(tmp_path, weight_server, monkeypatch):
    url, digest, _ = weight_server
    monkeypatch.setenv("DDAG_CACHE", str(tmp_path / "cache"))
    stem = _initialised(ResNet(), url, sha256=digest).visible_stem
    state = read_weights(next((tmp_path / "cache").rglob("resnet50-test.safetensors")))
    np.testing.assert_array_equal(stem.conv1.weight.asnumpy(), state["conv1.weight"])
    assert isinstance(stem.conv1.weight, ms.Parameter)


def test_convert_task_makes_a_backbone_checkpoint_of_an_imagenet_resnet(tmp_path):
    # An ImageNet ResNet-50 (.pth) becomes a backbone checkpoint for init.weights.
    state = _torchvision_resnet50(seed=4)
    source = tmp_path / "resnet50-tv.pth"
    torch_writer.save(torch_writer.tensors(state), source)
    out = tmp_path / "backbone_run"
    cfg = compose_config(["task=convert", f"task.source={source}"], output_dir=out)
    summary = convert.run(run_config(cfg))
    assert summary["kind"] == "backbone" and summary["unused"] == ["fc.bias", "fc.weight"]
    report = json.loads((out / "convert_report.json").read_text())
    assert report["backbone"]["layers"] == [3, 4, 6, 3] and report["loaded"] == summary["loaded"]
    trunk = _initialised(ResNet(), out / "converted.ckpt").trunk
    _assert_backbone_loaded(trunk, state)


def test_reference_ddag_checkpoint_converts_to_our_network_name_by_name(tmp_path):
    # The reference code's {'net': state_dict, ...} becomes a ddag checkpoint for task=eval.
    ref_state = _random_state(_manifest(), seed=5)
    ref = tmp_path / "regdb_best.pth"
    wrapped = {"net": torch_writer.tensors(ref_state), "mAP": np.float64(0.6), "epoch": 40}
    torch_writer.save(wrapped, ref)
    network, spec, report, unused = reference_ddag_network(read_weights(ref))
    assert spec["part_attention"]["num_parts"] == 3 and spec["graph_attention"]["num_heads"] == 4
    assert report.ok and len(report.loaded) == len(list(network.get_parameters()))
    assert "classifier1.weight" in unused and "wpa.W.0.weight" in unused
    out = tmp_path / "ddag_run"
    cfg = compose_config(
        ["task=convert", f"task.source={ref}", "task.output=ddag_regdb.ckpt"], output_dir=out
    )
    assert convert.run(run_config(cfg))["kind"] == "ddag"
    loaded = Checkpointer().load_network(out / "ddag_regdb.ckpt")
    network = loaded.network
    assert loaded.report.ok and loaded.input == InputSpec(288, 144)
    params = {p.name: p.asnumpy() for p in network.get_parameters()}
    for ours, theirs in REFERENCE_PAIRS.items():
        np.testing.assert_array_equal(params[ours], ref_state[theirs], err_msg=ours)
    bad = compose_config(["task=convert", f"task.source={ref}", "task.output=../x.ckpt"])
    with pytest.raises(ConfigError, match="plain file name"):
        convert.run(run_config(bad))
