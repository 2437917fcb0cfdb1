"""Untrusted files hold data only: checkpoints, manifests and index files cannot run code or
reach files outside their folder, and damaged files are refused instead of loaded."""

import copy

import mindspore as ms
import pytest

from ddag.checkpoints.checkpointer import Checkpointer
from ddag.checkpoints.format import save_checkpoint
from ddag.checkpoints.meta import CheckpointMeta
from ddag.config.run_config import config_dict, run_config
from ddag.errors import CheckpointError
from ddag.models.architecture import build_network

ms.set_context(mode=ms.PYNATIVE_MODE)

TINY_MODEL = {
    "_target_": "ddag.models.ddag.DDAG",
    "stems": "two_stream",
    "low_dim": 8,
    "backbone": {
        "_target_": "ddag.models.backbones.resnet.ResNet",
        "layers": [1, 1, 1, 1],
        "widths": [4, 4, 8, 8],
        "stem_channels": 8,
        "last_stride": 1,
    },
    "part_attention": {
        "_target_": "ddag.models.attention.iwpa.WeightedPartAttention",
        "_partial_": True,
        "num_parts": 2,
    },
    "graph_attention": None,
}


def _with(path, value):
    """TINY_MODEL with the value at a dotted `path` replaced."""
    model = copy.deepcopy(TINY_MODEL)
    *parents, last = path.split(".")
    node = model
    for key in parents:
        node = node[key]
    node[last] = value
    return model


def _fill(value, victim: str):
    """`value` with every "VICTIM" string replaced by the victim file's path."""
    if isinstance(value, dict):
        return {k: _fill(v, victim) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, victim) for v in value]
    return value.replace("VICTIM", victim) if isinstance(value, str) else value


@pytest.mark.parametrize(
    "path, value",
    [
        ("backbone.stem_channels", {"_target_": "builtins.open", "_args_": ["VICTIM", "w"]}),
        ("backbone.stem_channels", {"_target_": "os.system", "_args_": ["echo > VICTIM"]}),
        # An alias reached through one of our modules' attributes is still not our class.
        ("backbone", {"_target_": "ddag.models.architecture.importlib.import_module"}),
        ("backbone._args_", ["VICTIM"]),
        ("_target_", "pathlib.Path.write_text"),
        ("part_attention._recursive_", False),
    ],
)
def test_a_checkpoint_cannot_choose_what_gets_built(tmp_path, path, value):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    crafted = _with(path, _fill(value, str(victim)))
    checkpoint = tmp_path / "crafted.ckpt"
    save_checkpoint(checkpoint, build_network(TINY_MODEL, 4), meta=CheckpointMeta(model=crafted))
    with pytest.raises(CheckpointError, match="refused"):
        Checkpointer().load_network(checkpoint)
    assert victim.read_text() == "precious"


def test_a_checkpoint_with_our_components_and_plain_values_loads(tmp_path):
    checkpoint = tmp_path / "good.ckpt"
    save_checkpoint(checkpoint, build_network(TINY_MODEL, 4), meta=CheckpointMeta(model=TINY_MODEL))
    loaded = Checkpointer().load_network(checkpoint)
    network, report = loaded.network, loaded.report
    assert report.ok and network.has_part_attention and not network.has_graph_attention


@pytest.mark.parametrize("name", ["../../README", "/abs/table", "sub/table", "..", ".hidden"])
def test_a_table_manifest_name_cannot_write_outside_the_results_folder(tmp_path, name):
    from ddag.errors import ConfigError
    from ddag.reporting.tables import build_table, write_table

    results = tmp_path / "deep" / "results"
    table = build_table({"name": name, "rows": []}, [])
    with pytest.raises(ConfigError, match="not a plain file name"):
        write_table(table, results)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


def test_extract_output_must_be_a_file_name_in_the_run_directory(tmp_path):
    from ddag.errors import ConfigError
    from ddag.tasks import extract
    from tests.conftest import compose_config

    cfg = compose_config(
        ["task=extract", "task.checkpoint=unused.ckpt", "task.output=../../features.npz"],
        output_dir=tmp_path / "run",
    )
    with pytest.raises(ConfigError, match="task.output='../../features.npz'"):
        extract.run(run_config(cfg))
    assert not (tmp_path.parent / "features.npz").exists()


def test_a_resume_continues_the_stored_settings_and_refuses_changed_ones(tmp_path):
    from ddag.config.resume import resumed_config
    from ddag.errors import ConfigError
    from tests.conftest import compose_config

    def plain(*overrides):
        return config_dict(
            run_config(compose_config(["logger=none", *overrides], output_dir=tmp_path))
        )

    trained = plain("optimizer.lr=0.05", "task.epochs=30", "model/part_attention=none")
    bare = plain("task.resume=auto")
    resumed, changes = resumed_config(trained, bare, ["logger", "task.resume"], False)
    assert not changes and resumed["task"]["resume"] == "auto"
    assert resumed["optimizer"]["lr"] == 0.05 and resumed["task"]["epochs"] == 30
    assert not resumed["model"]["part_attention"]
    assert resumed == {**trained, "task": {**trained["task"], "resume": "auto"}}

    changed = plain("task.resume=auto", "seed=1", "optimizer.lr=0.1", "task.log_every=1")
    keys = ["logger", "task.resume", "seed", "optimizer.lr", "task.log_every"]
    with pytest.raises(ConfigError, match="task.resume_changes=true") as refused:
        resumed_config(trained, changed, keys, False)
    text = str(refused.value)
    assert "seed: 0 -> 1" in text and "optimizer.lr: 0.05 -> 0.1" in text
    assert "log_every" not in text and "task.epochs" not in text  # allowed, or not on the line
    resumed, changes = resumed_config(trained, changed, keys, True)
    assert resumed["seed"] == 1 and resumed["optimizer"]["lr"] == 0.1
    assert resumed["task"]["epochs"] == 30 and resumed["task"]["log_every"] == 1
    assert sorted(changes) == ["optimizer.lr: 0.05 -> 0.1", "seed: 0 -> 1"]
    with pytest.raises(ConfigError, match="model.part_attention"):
        group = plain("task.resume=auto", "model/part_attention=iwpa")
        resumed_config(trained, group, ["task.resume", "model/part_attention"], False)
