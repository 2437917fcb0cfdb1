"""Command-line typos answered by ddag before Hydra composes: closest name and valid choices."""

import pytest

from ddag.config.overrides import check_command_line, config_groups, help_text
from ddag.errors import ConfigError
from tests.conftest import CONF, compose_config


def _check(*argv):
    check_command_line(list(argv), CONF, compose_config)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["model.part_attention.num_partss=3"], "did you mean model.part_attention.num_parts?"),
        (["task.epoch=5"], "did you mean task.epochs?"),
        (["task=eval", "task.checkpont=x.ckpt"], "did you mean task.checkpoint?"),
        (["model/backbone=resnet5"], "did you mean 'resnet50'?"),
        (["task=evaluate"], "did you mean 'eval'?"),
        (["-m", "model/backbon=tiny,resnet18"], "did you mean 'model/backbone'?"),
        (["eval/protocol=[regdb_v2t,sysu_al]"], "did you mean 'sysu_all'?"),
        (["-m", "experiment=ddag_regdb_v2t,ddag_sysu_al"], "did you mean 'ddag_sysu_all'?"),
        (["task.epochs=abc"], "task.epochs='abc' is refused: Value 'abc' of type 'str'"),
        (["runtime.jit_step=maybe"], "runtime.jit_step='maybe' is refused"),
    ],
)
def test_a_typo_names_the_closest_valid_name_and_the_choices(argv, expected):
    with pytest.raises(ConfigError) as err:
        _check(*argv)
    assert expected in str(err.value)
    assert "_schema" not in str(err.value)


def test_valid_command_lines_pass_and_new_keys_need_a_plus():
    for argv in (
        [],
        ["task=eval", "task.checkpoint=x.ckpt", "eval/protocol=[regdb_v2t]"],
        ["-m", "seed=0,1", "+debug=smoke", "hydra.sweep.dir=x", "experiment=glob(ddag_*)"],
        ["+model.part_attention.num_partss=3"],  # added on purpose: the schema check answers
        ["model/part_attention=none", "model.low_dim=abc", "--cfg", "job"],
    ):
        _check(*argv)
    with pytest.raises(ConfigError, match=r"\+model.extra=\.\.\."):
        _check("model.extra=1")


def test_help_lists_every_group_and_option_without_schema_entries():
    groups = config_groups(CONF)
    assert "resnet50" in groups["model/backbone"] and "train" in groups["task"]
    assert not any(o.endswith("_schema") for options in groups.values() for o in options)
    text = help_text(CONF)
    assert "model/backbone: " in text and "_schema" not in text
    assert "hydra/launcher: basic" in text and "local_parallel, slurm" in text
    assert "hydra/sweeper: basic (default, every combination), optuna" in text


def test_mindspore_log_level_is_set_from_the_command_line_before_mindspore_loads():
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import run\n"
        "for argv, env in (([], {}), (['runtime.log_level=warning'], {'GLOG_v': '3'}),"
        " ([], {'GLOG_v': '1'}), (['runtime=gpu', '+runtime.log_level=debug'], {})):\n"
        "    run.apply_mindspore_log_level(argv, env)\n"
        "    print(env['GLOG_v'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.split() == ["3", "2", "1", "0"], result.stderr[-2000:]


@pytest.mark.parametrize(
    "argument, expected",
    [
        ("task.features=" + "[" * 3000 + "]" * 3000, "nests brackets 3000 levels deep"),
        ("task.features=[" + "1," * 60_000 + "1]", "120017 characters long"),
    ],
    ids=["deep", "long"],
)
def test_a_crafted_override_is_refused_before_hydra_parses_it(argument, expected):
    # Hydra's parser took 3.1 GB on the 3,000-level list; the refusal reads the text only.
    with pytest.raises(ConfigError, match=expected):
        _check("task=visualize", argument)
    _check("task=visualize", "task.features=[[a.npz]]", "+x={a:{b:[[1,2],[3]]}}")


def test_a_preset_under_another_task_names_the_key_and_what_to_do():
    with pytest.raises(ConfigError) as err:
        _check("task=bench", "experiment=pmt_regdb_v2t")
    message = str(err.value)
    assert "experiment=pmt_regdb_v2t sets task.eval_every" in message
    assert "presets are for task=train" in message and "model=pmt loss=pmt" in message
    _check("experiment=pmt_regdb_v2t")  # under task=train it composes
