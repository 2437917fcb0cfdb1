"""PMT as its authors train it: the progressive phase, the presets' recipe (hulu88/PMT
Pytorch-PMT-VI-ReID config/config.py, SYSU.yml, RegDB.yml, train.py, test.py)."""

import json

import pytest

from ddag.config.run_config import run_config
from ddag.errors import ConfigError
from ddag.tasks import train
from tests.conftest import TINY, compose_config


def test_pmt_presets_hold_the_authors_recipe():
    sysu = run_config(compose_config(["experiment=pmt_sysu_all"]))
    backbone = sysu.model["backbone"]
    assert (backbone["embed_dim"], backbone["depth"], backbone["stride"]) == (768, 12, 12)
    assert (backbone["drop_rate"], backbone["drop_path_rate"]) == (0.03, 0.1)
    assert backbone["layer_norm_eps"] == 1e-5 and sysu.model["stems"] == "shared"
    assert (sysu.loader.height, sysu.loader.width) == (256, 128)
    assert (sysu.loader.num_ids, sysu.loader.num_instances, sysu.task.epochs) == (8, 4, 24)
    assert sysu.init.weights.endswith("jx_vit_base_p16_224-80ecf9dd.pth")
    assert sysu.optimizer["_target_"].endswith("AdamW") and sysu.optimizer["lr"] == 3e-4
    assert sysu.optimizer["backbone_lr_scale"] == 0.5
    assert "trunk.blocks." in sysu.optimizer["backbone_prefixes"]
    assert sysu.schedule["warmup_epochs"] == 3 and sysu.schedule["floor_factor"] == 0.01
    assert sysu.loss["intra"]["until_epoch"] == 6 and sysu.loss["dcl"]["from_epoch"] == 6
    assert sysu.loss["triplet"]["margin"] == 0.1 and sysu.loss["msel"]["weight"] == 0.5
    assert sysu.loader.augment["gray_phase"]["until_epoch"] == 6
    assert list(sysu.loader.augment) == ["flip", "gray_phase", "thermal_mix", "random_erasing"]
    assert (sysu.eval.flip, sysu.eval.distance) == (False, "inner")
    regdb = run_config(compose_config(["experiment=pmt_regdb_v2t"]))
    assert regdb.task.epochs == 36 and list(regdb.eval.protocol) == ["regdb_v2t"]
    moved = run_config(compose_config(["experiment=pmt_sysu_all", "loss.intra.until_epoch=3"]))
    assert moved.loss["msel"]["from_epoch"] == moved.loader.augment["gray_phase"]["until_epoch"]


def test_the_benchmarked_step_is_the_phase_with_every_term():
    from ddag.tasks.steps.networks import build_network, build_objective

    config = run_config(compose_config(TINY + ["model=pmt", "loss=pmt", "model/backbone=vit_tiny"]))
    objective = build_objective(config, build_network(config, 8), 8)
    assert objective.fullest_epoch() == 6
    assert objective.active_terms(6) == (True, False, True, True, True)
    assert objective.active_terms(5) == (True, True, False, False, False)


def test_epoch_windows_are_checked_at_start_up():
    with pytest.raises(ConfigError, match=r"loss\.intra\.until_epoch='x'"):
        run_config(compose_config(["loss=pmt", "loss.intra.until_epoch=x"]))
    with pytest.raises(ConfigError, match="must be after from_epoch"):
        run_config(compose_config(["loss=pmt", "+loss.dcl.until_epoch=2"]))


def test_pmt_trains_progressively_gray_and_intra_triplets_then_all_terms(tmp_path):
    """loss=pmt with loader/augment=pmt: the intra-modality triplet alone in the first phase
    (the others report 0 and add nothing), then the joint triplet, DCL and MSEL; the compiled
    step changes with the phase."""
    overrides = TINY + ["model=pmt", "loss=pmt", "model/backbone=vit_tiny", "loader/augment=pmt"]
    overrides += ["model.backbone.depth=1", "task.epochs=2", "task.max_steps_per_epoch=2"]
    overrides += ["loss.intra.until_epoch=1", "task.selection=last", "task.eval_every=5"]
    overrides += ["optimizer=adamw_pmt", "schedule=pmt"]
    config = run_config(compose_config(overrides, output_dir=tmp_path))
    assert config.model["stems"] == "shared"
    assert config.loss["dcl"]["from_epoch"] == 1 and config.loss["triplet"]["from_epoch"] == 1
    assert config.loader.augment["gray_phase"]["until_epoch"] == 1
    train.run(config)
    history = json.loads((tmp_path / "train_history.json").read_text())
    assert history["term_names"] == ["id", "intra", "triplet", "dcl", "msel"]
    first, second = history["epoch_losses"]
    assert first["intra"] > 0 and first["triplet"] == first["dcl"] == first["msel"] == 0
    assert first["total"] == pytest.approx(first["id"] + first["intra"], rel=1e-5)
    assert second["intra"] == 0 and min(second["triplet"], second["dcl"], second["msel"]) > 0
    expected = second["id"] + second["triplet"] + 0.5 * (second["dcl"] + second["msel"])
    assert second["total"] == pytest.approx(expected, rel=1e-5)


def test_a_phase_without_any_loss_term_is_refused_at_start_up(tmp_path):
    overrides = TINY + ["model=pmt", "loss=pmt", "model/backbone=vit_tiny", "loss.id=null"]
    overrides += ["model.backbone.depth=1", "task.epochs=3", "loss.intra.until_epoch=1"]
    overrides += ["loss.triplet.from_epoch=2", "loss.dcl=null", "loss.msel=null"]
    config = run_config(compose_config(overrides, output_dir=tmp_path))
    with pytest.raises(ConfigError, match="no loss term acts in epoch 1"):
        train.run(config)
