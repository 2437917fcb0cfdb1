"""Real ResNet-50 shapes: loading a checkpoint laid out like the published model-zoo DDAG."""

import mindspore as ms
import numpy as np
import pytest

from ddag.checkpoints.checkpointer import Checkpointer
from ddag.config.run_config import run_config
from ddag.tasks import eval as eval_task
from tests.conftest import compose_config, load_json, reference_data


def _model_zoo_checkpoint(path, manifest):
    """Every parameter of the manifest with its name and shape; BN statistics kept sane."""
    rng = np.random.default_rng(0)
    entries = []
    for param in manifest["params"]:
        name, shape = param["name"], tuple(param["shape"])
        if name.endswith(("moving_variance", "gamma")):
            value = np.ones(shape, np.float32)
        elif name.endswith(("moving_mean", "beta")):
            value = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        entries.append({"name": name, "data": ms.Tensor(value)})
    ms.save_checkpoint(entries, str(path))
    return {e["name"]: e["data"].asnumpy() for e in entries}


@pytest.mark.slow
def test_model_zoo_checkpoint_is_evaluated_with_its_shared_layout(tmp_path):
    manifest = load_json(reference_data("ms_param_manifest_regdb.json"))
    path = tmp_path / "ddag_regdb.ckpt"
    values = _model_zoo_checkpoint(path, manifest)
    cfg = compose_config(
        [
            "task=eval",
            f"task.checkpoint={path}",
            "model/backbone=resnet50",
            "logger=none",
            "runtime.mode=pynative",
            "loader.height=32",
            "loader.width=16",
            "loader.test_batch_size=48",
            "dataset.num_train_ids=2",
            "dataset.num_val_ids=0",
            "dataset.num_test_ids=6",
            "dataset.images_per_id=4",
        ],
        output_dir=tmp_path / "eval",
    )
    ms.set_context(mode=ms.PYNATIVE_MODE)
    loaded = Checkpointer().load_network(path)
    network, report = loaded.network, loaded.report
    assert report.ok and len(report.loaded) == len({p.name for p in network.get_parameters()})
    assert not network.two_stream and not network.has_graph_attention
    params = {p.name: p.asnumpy() for p in network.get_parameters()}
    for ours, theirs in [
        ("shared_stem.conv1.weight", "resnet50.conv1.weight"),
        ("trunk.layer4.2.conv3.weight", "resnet50.layer4.2.conv3.weight"),
        ("trunk.layer1.0.down_sample_layer.1.gamma", "resnet50.layer1.0.down_sample_layer.1.gamma"),
        ("part_attention.fc2.weight", "wpa.fc2.weight"),
        ("part_attention.gate", "wpa.gate"),
        ("classifier.weight", "classifier.weight"),
    ]:
        np.testing.assert_array_equal(params[ours], values[theirs])
    summary = eval_task.run(run_config(cfg))
    assert {"v2t/FC/rank1", "t2v/FC_att/mAP"} <= set(summary)
