"""Checkpoints of earlier formats load and resume as they did: `tests/data/format_v2/` holds a
run checkpoint written by ddag before models stopped reading files (format 2), and what resuming
it gave there (see `resumed.json` for how both were made)."""

import json
import shutil

import pytest

from ddag.checkpoints.checkpointer import Checkpointer
from ddag.checkpoints.meta import FORMAT_VERSION, CheckpointMeta, upgrade
from ddag.config.context import RunContext
from ddag.config.run_config import run_config
from ddag.errors import CheckpointError
from ddag.tasks import train
from tests.conftest import DATA, compose_config

OLD = DATA / "format_v2"


def test_a_format_2_checkpoint_loads_its_network_in_todays_keys():
    loaded = Checkpointer().load_network(OLD / "last.ckpt")
    assert loaded.report.ok and loaded.meta.format_version == FORMAT_VERSION
    assert "pretrained" not in loaded.meta.model["backbone"]
    assert loaded.meta.config["init"] == {"weights": None, "sha256": None, "strict": True}
    assert loaded.meta.state["epoch"] == 1


def test_a_format_2_checkpoint_resumes_bit_exactly_as_it_did_when_written(tmp_path):
    expected = json.loads((OLD / "resumed.json").read_text())
    checkpoint = tmp_path / "last.ckpt"
    shutil.copy(OLD / "last.ckpt", checkpoint)
    out = tmp_path / "resumed"
    overrides = [
        "+debug=fast",
        "seed=3",
        "model.low_dim=16",
        "task.epochs=2",
        f"task.resume={checkpoint}",
        "task.resume_changes=true",
    ]
    config = run_config(compose_config(overrides, output_dir=out))
    train.run(config, RunContext(tuple(overrides)))
    history = json.loads((out / "train_history.json").read_text())
    assert history["epoch_losses"][1] == expected["epoch2_losses"]
    results = json.loads((out / "results.json").read_text())
    means = {f"{r['protocol']}/{r['feature']}": r["mean"] for r in results}
    assert means == expected["test_mean"]


def test_upgrade_moves_the_backbone_weights_into_init_and_adds_the_augment_group():
    old_spec = {"_target_": "x.DDAG", "backbone": {"layers": [1], "pretrained": "/w.ckpt"}}
    raw = {
        "format_version": 2,
        "model": old_spec,
        "config": {
            "model": {"backbone": {"pretrained": "/w.ckpt", "pretrained_sha256": "ab" * 8}},
            "loader": {"padding": 6, "flip": False},
        },
    }
    new = upgrade(raw)
    assert new["format_version"] == FORMAT_VERSION and raw["format_version"] == 2  # a copy
    assert new["model"]["backbone"] == {"layers": [1]}
    assert new["config"]["model"]["backbone"] == {}
    assert new["config"]["init"] == {"weights": "/w.ckpt", "sha256": "ab" * 8, "strict": True}
    augment = new["config"]["loader"]["augment"]["pad_crop_flip"]
    assert (augment["padding"], augment["flip"]) == (6, False)
    assert CheckpointMeta.from_dict(raw).model == new["model"]


def test_format_1_keeps_its_input_size_in_the_run_config():
    meta = CheckpointMeta.from_dict({"config": {"loader": {"height": 96, "width": 48}}})
    assert (meta.input.height, meta.input.width) == (96, 48)


@pytest.mark.parametrize("version", [0, FORMAT_VERSION + 1, "2", True])
def test_an_unknown_format_version_is_refused(version):
    with pytest.raises(CheckpointError, match="format version"):
        upgrade({"format_version": version})


def test_an_accepted_resume_change_takes_effect_and_an_architecture_change_is_refused(tmp_path):
    import numpy as np

    from ddag.checkpoints.format import read_checkpoint
    from ddag.errors import ConfigError

    checkpoint = tmp_path / "last.ckpt"
    shutil.copy(OLD / "last.ckpt", checkpoint)
    base = ["+debug=fast", "seed=3", "model.low_dim=16", f"task.resume={checkpoint}"]
    changed = base + ["task.epochs=2", "optimizer.lr=0.5", "task.resume_changes=true"]
    out = tmp_path / "resumed"
    train.run(run_config(compose_config(changed, output_dir=out)), RunContext(tuple(changed)))
    params, meta = read_checkpoint(out / "checkpoints" / "last.ckpt")
    rates = params["optimizer.learning_rate_group_0"].asnumpy()
    assert meta.config["optimizer"]["lr"] == 0.5
    assert np.isclose(rates.max(), 0.5), rates  # the new rate, not the stored run's 0.1
    bigger = base + ["model/backbone=resnet18", "task.resume_changes=true"]
    config = run_config(compose_config(bigger, output_dir=tmp_path / "other"))
    with pytest.raises(ConfigError, match="changes its architecture"):
        train.run(config, RunContext(tuple(bigger)))
