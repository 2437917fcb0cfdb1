"""Every config option composes and validates; typos and wrong types name the key."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ValidationError

from ddag.config.instantiate import build
from ddag.config.run_config import run_config
from ddag.config.validate import validate_config
from ddag.errors import ConfigError
from ddag.tasks.steps.data import build_protocols
from ddag.tasks.steps.networks import build_loss_terms, build_network
from tests.builders import official_split_layout, write_official_split_files
from tests.conftest import CONF, compose_config

GROUPS = [
    "dataset",
    "loader",
    "model",
    "model/backbone",
    "model/part_attention",
    "model/graph_attention",
    "loss",
    "optimizer",
    "schedule",
    "eval",
    "runtime",
    "logger",
    "task",
]


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _resolved(cfg):
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes_and_validates(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "task":  # the values each task requires
        overrides += REQUIRED.get(option, [])
    cfg = compose_config(overrides, output_dir=tmp_path)
    validate_config(_resolved(cfg))


REQUIRED = {
    "eval": ["task.checkpoint=some.ckpt"],
    "extract": ["task.checkpoint=some.ckpt"],
    "export": ["task.checkpoint=some.ckpt"],
    "search": ["task.checkpoint=some.ckpt", "task.query=q", "task.gallery=g"],
    "table": ["task.table=ddag_sysu", "task.runs=[multirun]"],
    "synthesize": ["task.root=demo"],
    "convert": ["task.source=resnet50.pth"],
    "score": ["task.features=feat.npz"],
    "visualize": ["task.checkpoint=some.ckpt"],
}


def test_each_task_carries_only_its_own_keys(tmp_path):
    eval_keys = set(compose_config(["task=eval"], output_dir=tmp_path).task)
    assert eval_keys == {"name", "checkpoint"}
    assert "checkpoint" not in compose_config([], output_dir=tmp_path).task
    with pytest.raises(ConfigError, match="task=eval needs checkpoint: add task.checkpoint=PATH"):
        validate_config(_resolved(compose_config(["task=eval"], output_dir=tmp_path)))
    with pytest.raises(ConfigError, match="unknown key 'task.epochz'.*did you mean task.epochs"):
        validate_config(_resolved(compose_config(["+task.epochz=3"], output_dir=tmp_path)))


@pytest.mark.parametrize("name", _options("eval/protocol"))
def test_every_protocol_file_builds(name, tmp_path):
    overrides = [f"eval/protocol=[{name}]"]
    if name.startswith("sysu_official"):  # reads the authors' split file when it is built
        split_dir = tmp_path / "exp"
        write_official_split_files(split_dir, official_split_layout(0), seed=0)
        overrides.append(f"eval.protocol.{name}.split_dir={split_dir}")
    cfg = compose_config(overrides, output_dir=tmp_path)
    validate_config(_resolved(cfg))  # the start-up check sees every selected protocol node
    (protocol,) = build_protocols(run_config(cfg))
    assert protocol.fingerprint()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], ["regdb_v2t", "regdb_t2v"]),  # the synthetic dataset's choice
        (["dataset=sysu"], ["sysu_all", "sysu_indoor"]),
        (["dataset=regdb"], ["regdb_v2t", "regdb_t2v"]),
        (["dataset=sysu", "eval/protocol=[sysu_indoor]"], ["sysu_indoor"]),
        (["experiment=ddag_sysu_all"], ["sysu_all"]),
        (["experiment=ddag_regdb_t2v", "+debug=smoke"], ["regdb_v2t", "regdb_t2v"]),
    ],
)
def test_protocols_are_a_config_group_each_dataset_chooses_from(overrides, expected, tmp_path):
    cfg = compose_config(overrides, output_dir=tmp_path)
    assert list(cfg.eval.protocol) == expected


def test_a_protocol_typo_fails_when_the_config_is_composed(tmp_path):
    with pytest.raises(ConfigCompositionException, match="eval/protocol/sysu_al"):
        compose_config(["eval/protocol=[sysu_al]"], output_dir=tmp_path)


def test_typo_in_component_key_names_the_key_and_suggests(tmp_path):
    cfg = compose_config(["+model.part_attention.num_partss=3"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"model\.part_attention\.num_partss.*num_parts"):
        validate_config(_resolved(cfg))


def test_wrong_type_names_the_key(tmp_path):
    cfg = compose_config(["model.low_dim=abc"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"wrong type for 'model\.low_dim'.*int"):
        validate_config(_resolved(cfg))


def test_wrong_type_in_list_is_caught(tmp_path):
    cfg = compose_config(["model.backbone.layers=[1,x,1,1]"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"model\.backbone\.layers"):
        validate_config(_resolved(cfg))


def test_bad_target_is_reported(tmp_path):
    cfg = compose_config(
        ["model.backbone._target_=ddag.models.backbones.resnet.ResNett"], output_dir=tmp_path
    )
    with pytest.raises(ConfigError, match="did you mean 'ResNet'"):
        validate_config(_resolved(cfg))


def test_invalid_choice_of_fixed_key(tmp_path):
    cfg = compose_config(["task.selection=best"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="task.selection"):
        validate_config(_resolved(cfg))


def test_schema_rejects_unknown_and_mistyped_fixed_keys(tmp_path):
    with pytest.raises(ConfigCompositionException, match="task.epochz") as err:
        compose_config(["task.epochz=3"], output_dir=tmp_path)
    assert isinstance(err.value.__cause__, ConfigAttributeError)
    with pytest.raises(ConfigCompositionException, match="task.epochs=abc") as err:
        compose_config(["task.epochs=abc"], output_dir=tmp_path)
    assert isinstance(err.value.__cause__, ValidationError)
    cfg = compose_config(["+task.epochz=3"], output_dir=tmp_path)  # "+" gets past Hydra's check
    with pytest.raises(ConfigError, match=r"task\.epochz.*did you mean task\.epochs"):
        validate_config(_resolved(cfg))


def test_none_options_remove_the_branches(tmp_path):
    cfg = compose_config(
        ["model/part_attention=none", "model/graph_attention=none"], output_dir=tmp_path
    )
    network = build_network(run_config(cfg), num_classes=4)
    assert network.output_names == ("pool", "feat", "logits")


def test_loss_terms_are_keys_of_loss(tmp_path):
    cfg = compose_config(["loss.triplet.margin=0.5", "loss.graph=null"], output_dir=tmp_path)
    validate_config(_resolved(cfg))
    terms, _ = build_loss_terms(run_config(cfg))
    assert list(terms) == ["id", "triplet", "part"]  # null leaves a term out
    assert terms["triplet"].margin == 0.5
    with pytest.raises(ConfigError, match=r"loss\.triplet\.margn"):
        validate_config(_resolved(compose_config(["+loss.triplet.margn=0.5"], output_dir=tmp_path)))


def test_conf_tree_is_the_documented_one():
    assert (CONF / "config.yaml").is_file()
    assert (
        Path(CONF / "task" / "train.yaml").is_file() and Path(CONF / "task" / "eval.yaml").is_file()
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.epochs=0", "task.epochs=0 is out of range; it must be between 1 and 100000"),
        ("task.epochs=-3", "task.epochs=-3 is out of range"),
        ("task.max_steps_per_epoch=0", "task.max_steps_per_epoch=0 is out of range"),
        ("loader.num_instances=0", "loader.num_instances=0 is out of range"),
        ("loader.num_ids=0", "loader.num_ids=0 is out of range"),
        ("loader.test_batch_size=0", "loader.test_batch_size=0 is out of range"),
        ("loader.padding=-1", "loader.padding=-1 is out of range; it must be between 0 and"),
        ("loader.height=100000", "loader.height=100000 is out of range; it must be between 8"),
        ("loader.num_ids=1000000", "loader.num_ids=1000000 is out of range"),
        ("seed=-1", "seed=-1 is out of range; it must be between 0 and 4294967295"),
        ("task=search task.top_k=0", "task.top_k=0 is out of range"),
        ("eval.rerank_lambda=1.5", "must be between 0 and 1"),
    ],
)
def test_values_out_of_range_are_refused_at_start_up(override, message):
    overrides = override.split()
    if "task=search" in overrides:
        overrides += REQUIRED["search"]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(_resolved(compose_config(overrides)))


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=-0.1", "lr=-0.1 must be >= 0"),
        ("optimizer.momentum=1.5", r"momentum=1.5 must be in \[0, 1\)"),
        ("model.graph_attention.dropout=1.5", r"dropout=1.5 must be in \[0, 1\)"),
    ],
)
def test_component_values_out_of_range_fail_when_built(override, message, tmp_path):
    cfg = compose_config(["logger=none", override], output_dir=tmp_path)
    validate_config(_resolved(cfg))
    with pytest.raises(ConfigError, match=message):
        if override.startswith("optimizer"):
            build(cfg.optimizer)
        else:
            build_network(run_config(cfg), 4)


def test_single_loss_terms_are_added_or_swapped_from_the_term_group(tmp_path):
    cfg = compose_config(
        ["+loss/term@loss.hc=hetero_center", "+loss/term@loss.id=label_smoothing"],
        output_dir=tmp_path,
    )
    validate_config(_resolved(cfg))
    terms, _ = build_loss_terms(run_config(cfg))
    assert type(terms["hc"]).__name__ == "HeteroCenter" and terms["hc"].output == "pool"
    assert type(terms["id"]).__name__ == "LabelSmoothingCrossEntropy"
    assert list(terms) == ["id", "triplet", "part", "graph", "hc"]


def test_config_hash_names_the_settings_not_the_run_folder(tmp_path):
    from ddag.config.run_config import config_hash

    def hashed(*overrides, folder="a"):
        return config_hash(
            run_config(compose_config(list(overrides), output_dir=tmp_path / folder))
        )

    assert hashed() == hashed(folder="b")  # logger.log_dir lies inside the run folder
    assert hashed() == hashed("logger=none")
    assert hashed() != hashed("seed=1") != hashed("optimizer.lr=0.05")


def test_unresolvable_interpolations_are_config_errors_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DDAG_TEST_NOT_SET", raising=False)
    monkeypatch.setenv("DDAG_TEST_WORD", "abc")
    for override, key in (
        ("task.epochs=${oc.env:DDAG_TEST_NOT_SET}", "task.epochs"),
        ("seed=${oc.env:DDAG_TEST_WORD}", "seed"),
    ):
        with pytest.raises(ConfigError, match=f"^{key}: its value cannot be resolved"):
            run_config(compose_config([override], output_dir=tmp_path))


def test_debug_fast_keeps_an_input_deep_resnets_can_take():
    # ResNet-50 gave NaN features at 32x16 after +debug=fast's two steps; 64x32 tests finite.
    def size(*overrides):
        loader = run_config(compose_config([*overrides, "+debug=fast"])).loader
        return loader.height, loader.width

    assert size() == (32, 16)  # the tiny backbone
    assert size("model/backbone=resnet18") == (32, 16)
    assert size("model/backbone=resnet50", "loader=paper") == (64, 32)
    assert size("model/backbone=resnet101") == (64, 32)
    assert size("model/backbone=vit_tiny") == (32, 16)
    assert size("model/backbone=resnet50", "loader.height=48") == (48, 32)  # told: kept
