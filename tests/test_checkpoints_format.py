"""Checkpoint round trip, readable mismatch reports, corrupt files."""

import functools

import mindspore as ms
import numpy as np
import pytest

from ddag.checkpoints.checkpointer import Checkpointer, InitSettings
from ddag.checkpoints.format import load_into
from ddag.checkpoints.format import read_checkpoint_file as read_checkpoint
from ddag.checkpoints.format import write_checkpoint_file as save_checkpoint
from ddag.checkpoints.names import ms_zoo_to_ddag
from ddag.errors import CheckpointError
from ddag.models.attention.iwpa import WeightedPartAttention
from ddag.models.backbones.resnet import ResNet
from ddag.models.ddag import DDAG

ms.set_context(mode=ms.PYNATIVE_MODE)


def _network(num_classes=4, seed=0):
    ms.set_seed(seed)
    return DDAG(
        ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8),
        num_classes,
        part_attention=functools.partial(WeightedPartAttention, num_parts=2),
    )


def _values(net):
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


def test_round_trip_restores_parameters_optimizer_and_metadata(tmp_path):
    source = _network(seed=0)
    optimizer = ms.nn.Momentum(source.trainable_params(), learning_rate=0.1, momentum=0.9)
    optimizer.moments[0].set_data(ms.Tensor(np.full(optimizer.moments[0].shape, 3.0, np.float32)))
    path = save_checkpoint(
        tmp_path / "sub" / "a.ckpt", source, optimizer, {"epoch": 3, "note": "x"}
    )
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["a.ckpt"]  # no temp left

    target = _network(seed=1)
    target_opt = ms.nn.Momentum(target.trainable_params(), learning_rate=0.1, momentum=0.9)
    assert any(not np.array_equal(v, _values(target)[k]) for k, v in _values(source).items())
    params, meta = read_checkpoint(path)
    report = load_into(target, params, optimizer=target_opt)
    assert report.ok and meta == {"epoch": 3, "note": "x"}
    for name, value in _values(source).items():
        np.testing.assert_array_equal(_values(target)[name], value)
    np.testing.assert_array_equal(target_opt.moments[0].asnumpy(), 3.0)


def test_mismatched_checkpoint_names_the_parameters_and_changes_nothing(tmp_path):
    path = save_checkpoint(tmp_path / "four.ckpt", _network(num_classes=4))
    target = _network(num_classes=5, seed=1)
    before = _values(target)
    with pytest.raises(
        CheckpointError, match=r"classifier\.weight checkpoint \(4, 32\) vs model \(5, 32\)"
    ):
        load_into(target, read_checkpoint(path)[0])
    for name, value in _values(target).items():
        np.testing.assert_array_equal(value, before[name])
    report = load_into(target, read_checkpoint(path)[0], strict=False)
    assert report.mismatched and "classifier.weight" not in report.missing


def test_other_architecture_reports_missing_and_unexpected(tmp_path):
    plain = DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8), 4)
    path = save_checkpoint(tmp_path / "plain.ckpt", plain)
    with pytest.raises(CheckpointError, match="missing from checkpoint") as err:
        load_into(_network(), read_checkpoint(path)[0])
    assert "part_attention" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_unreadable_files_are_reported(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    if content is None:  # a truncated real checkpoint
        good = save_checkpoint(tmp_path / "good.ckpt", _network())
        content = good.read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated or not a MindSpore checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "absent.ckpt")


def test_model_zoo_name_table():
    assert (
        ms_zoo_to_ddag("visible_module.visible.conv1.weight", "two_stream")
        == "visible_stem.conv1.weight"
    )
    assert (
        ms_zoo_to_ddag("base_resnet.base.layer4.2.bn3.gamma", "two_stream")
        == "trunk.layer4.2.bn3.gamma"
    )
    assert (
        ms_zoo_to_ddag("resnet50.layer1.0.conv1.weight", "shared") == "trunk.layer1.0.conv1.weight"
    )
    assert ms_zoo_to_ddag("resnet50.bn1.gamma", "shared") == "shared_stem.bn1.gamma"
    assert ms_zoo_to_ddag("wpa.fc1.weight", "shared") == "part_attention.fc1.weight"
    assert (
        ms_zoo_to_ddag("graph_att.out_attention.W", "two_stream")
        == "graph_attention.out_attention.W"
    )
    assert ms_zoo_to_ddag("resnet50.conv1.weight", "two_stream") is None  # unused by that layout


def _imagenet_checkpoint(path, widths=(4, 4, 8, 8), prefix=""):
    """An ImageNet-style ResNet checkpoint: conv1/bn1/layer*, plus a classifier head."""
    ms.set_seed(7)
    recipe = ResNet((1, 1, 1, 1), widths, 8)
    entries = [
        {"name": prefix + p.name, "data": p}
        for cell in (recipe.make_stem(), recipe.make_trunk())
        for p in cell.get_parameters()
    ]
    entries.append(
        {"name": prefix + "end_point.weight", "data": ms.Tensor(np.ones((10, 32), np.float32))}
    )
    ms.save_checkpoint(entries, str(path))
    return {e["name"][len(prefix) :]: e["data"].asnumpy() for e in entries}


@pytest.mark.parametrize("prefix", ["", "network.backbone."])
def test_pretrained_backbone_goes_into_both_stems_and_the_trunk(tmp_path, prefix):
    weights = _imagenet_checkpoint(tmp_path / "imagenet.ckpt", prefix=prefix)
    net = DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8), 4)
    report = Checkpointer().initialise(net, InitSettings(str(tmp_path / "imagenet.ckpt")))
    assert report.ok and not any(name.startswith("classifier") for name in report.loaded)
    values = _values(net)
    for stem in ("visible_stem", "thermal_stem"):
        np.testing.assert_array_equal(values[f"{stem}.conv1.weight"], weights["conv1.weight"])
        np.testing.assert_array_equal(values[f"{stem}.bn1.gamma"], weights["bn1.gamma"])
    np.testing.assert_array_equal(
        values["trunk.layer3.0.conv2.weight"], weights["layer3.0.conv2.weight"]
    )


def test_pretrained_backbone_of_another_shape_is_refused_unless_not_strict(tmp_path):
    _imagenet_checkpoint(tmp_path / "wide.ckpt", widths=(8, 8, 8, 8))
    net = DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8), 4)
    before = _values(net)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        Checkpointer().initialise(net, InitSettings(str(tmp_path / "wide.ckpt")))
    assert all(np.array_equal(before[k], v) for k, v in _values(net).items())  # untouched
    report = Checkpointer().initialise(net, InitSettings(str(tmp_path / "wide.ckpt"), strict=False))
    assert report.mismatched and "visible_stem.conv1.weight" in report.loaded


def test_a_flipped_byte_in_the_tensor_data_is_refused(tmp_path):
    net = _network()
    marker = np.arange(1, 1 + net.classifier.weight.size, dtype=np.float32) * 1.25
    net.classifier.weight.set_data(ms.Tensor(marker.reshape(net.classifier.weight.shape)))
    path = save_checkpoint(tmp_path / "a.ckpt", net)
    read_checkpoint(path)  # intact: loads
    data = bytearray(path.read_bytes())
    offset = bytes(data).find(marker[:16].tobytes())
    assert offset > 0
    data[offset + 40] ^= 0x01  # one bit of one float of the classifier
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        read_checkpoint(path)


def test_a_full_disk_keeps_the_last_good_checkpoint_and_names_the_path(tmp_path, monkeypatch):
    import errno

    net = _network()
    path = save_checkpoint(tmp_path / "last.ckpt", net)
    good = path.read_bytes()

    def full_disk(entries, name, **kwargs):
        with open(name, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", full_disk)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*last\.ckpt.*space"):
        save_checkpoint(path, _network(seed=1))
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_leftover_temporary_files_are_removed_on_the_next_save(tmp_path):
    stale = tmp_path / "last.ckpt.abc123.tmp.ckpt"
    stale.write_bytes(b"half a checkpoint from a killed run")
    save_checkpoint(tmp_path / "last.ckpt", _network())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


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
