"""Untrusted files hold data only: checkpoints, manifests and index files cannot run code or
reach files outside their folder, and damaged files are refused instead of loaded."""

import copy

import mindspore as ms
import pytest

from ddag.errors import CheckpointError
from ddag.io.checkpoint import save_checkpoint
from ddag.models.loading import build_network, network_for_checkpoint

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
        "pretrained": None,
        "strict": True,
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
    save_checkpoint(checkpoint, build_network(TINY_MODEL, 4), meta={"model": crafted})
    with pytest.raises(CheckpointError, match="refused"):
        network_for_checkpoint(checkpoint)
    assert victim.read_text() == "precious"


def test_a_checkpoint_with_our_components_and_plain_values_loads(tmp_path):
    checkpoint = tmp_path / "good.ckpt"
    save_checkpoint(checkpoint, build_network(TINY_MODEL, 4), meta={"model": TINY_MODEL})
    network, report, _ = network_for_checkpoint(checkpoint)
    assert report.ok and network.has_part_attention and not network.has_graph_attention


@pytest.mark.parametrize("name", ["../../README", "/abs/table", "sub/table", "..", ".hidden"])
def test_a_table_manifest_name_cannot_write_outside_the_results_folder(tmp_path, name):
    from ddag.errors import ConfigError
    from ddag.evaluation.tables import build_table, write_table

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
        extract.run(cfg)
    assert not (tmp_path.parent / "features.npz").exists()


def test_resuming_with_other_settings_names_every_changed_key(tmp_path, caplog):
    import logging

    from ddag.tasks import common, train
    from tests.conftest import compose_config

    trained = compose_config(["logger=none"], output_dir=tmp_path)
    meta = {"config": common.to_dict(trained), "config_hash": common.config_hash(trained)}
    same = compose_config(["logger=none", "task.resume=auto"], output_dir=tmp_path)
    changed = compose_config(
        ["logger=none", "task.resume=auto", "seed=1", "optimizer.lr=0.05"], output_dir=tmp_path
    )
    with caplog.at_level(logging.WARNING, logger="ddag.tasks.train"):
        train._report_changes(meta, same, tmp_path / "last.ckpt")
        assert not caplog.records  # only task.resume differs: nothing to report
        train._report_changes(meta, changed, tmp_path / "last.ckpt")
    text = caplog.text
    assert "seed: 0 -> 1" in text and "optimizer.lr: 0.1 -> 0.05" in text
    assert "task.resume" not in text
