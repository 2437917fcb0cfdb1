"""DEEN's modules, losses and presets in ddag: MFA and DEE compose with DDAG, AGW and DEEN, the
objective repeats labels for the expanded batch, a DEEN checkpoint of the authors' code converts
and evaluates, and DEEN learns on the synthetic data."""

import json
import sys

import mindspore as ms
import numpy as np
import pytest

from ddag.config.run_config import run_config
from ddag.errors import ConfigError
from ddag.losses.cpm import CenterPairMining
from ddag.losses.objective import Objective
from ddag.losses.terms import CrossEntropy
from ddag.models.aggregation.mfa import MFABlock
from ddag.models.architecture import build_network
from ddag.models.expansion.dee import DiverseEmbeddingExpansion
from ddag.tasks import convert, extract, score, train
from ddag.tasks import eval as eval_task
from tests import torch_writer
from tests.conftest import DATA, TINY, compose_config

sys.path.insert(0, str(DATA / "goldens"))
from synthetic_weights import synthetic_state  # noqa: E402

ms.set_context(mode=ms.PYNATIVE_MODE)
EAGER = ["runtime.mode=pynative", "runtime.jit_step=false"]
STAGES = ((16, 64, 1), (64, 64, 2), (64, 128, 2), (128, 128, 1))  # the tiny recipe's


def test_a_new_mfa_block_is_the_identity_on_its_stage_output():
    block = MFABlock(high_dim=64, low_dim=16, strided=True)
    block.set_train(False)
    x_l = ms.Tensor(np.random.default_rng(0).normal(size=(2, 16, 8, 4)).astype(np.float32))
    x_h = ms.Tensor(np.random.default_rng(1).normal(size=(2, 64, 4, 2)).astype(np.float32))
    np.testing.assert_allclose(block(x_h, x_l).asnumpy(), x_h.asnumpy(), atol=1e-6)


def test_dee_triples_the_batch_input_first():
    dee = DiverseEmbeddingExpansion(STAGES, stage=2, dropout=0.01)
    dee.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).normal(size=(3, 64, 4, 2)).astype(np.float32))
    out = dee(x).asnumpy()
    assert out.shape == (9, 64, 4, 2)
    np.testing.assert_array_equal(out[:3], x.asnumpy())
    assert not np.allclose(out[3:6], out[6:])  # two different expansions
    with pytest.raises(ValueError, match="a stage must follow it"):
        DiverseEmbeddingExpansion(STAGES, stage=4)


@pytest.mark.parametrize("model", ["ddag", "agw", "deen"])
def test_the_modules_compose_with_every_model_and_declare_three_rows(model):
    overrides = [f"model={model}", "model/backbone=tiny"]
    if model != "deen":
        overrides += ["model/aggregation=mfa", "model/expansion=dee"]
    config = run_config(compose_config(TINY + overrides))
    network = build_network(config.model, 4)
    assert network.rows_per_image == 3 and network.output_names[-1] == "orthogonality"
    network.set_train(True)
    images = ms.Tensor(np.zeros((2, 3, 32, 16), np.float32))
    labels = ms.Tensor(np.array([0, 0, 1, 1], np.int32))
    adjacency = ms.Tensor(np.ones((12, 12), np.float32))
    noise = ms.Tensor(np.zeros(network.noise_size(4), np.float32))
    outputs = network(images, images, adjacency, noise)
    assert outputs[0].shape[0] == 12 and labels.shape[0] * 3 == 12
    fc, fc_att = network.embed(images, 1)
    assert fc.shape == (2, 6 * network.out_channels) and fc_att.shape[0] == 2


def test_the_objective_repeats_labels_as_the_authors_and_refuses_cpm_without_dee():
    config = run_config(compose_config(TINY + ["model=deen", "model/backbone=tiny"]))
    network = build_network(config.model, 4)
    objective = Objective(network, {"id": CrossEntropy("logits")}, batch_pairs=4)
    visible = ms.Tensor(np.random.default_rng(0).normal(size=(4, 3, 32, 16)).astype(np.float32))
    labels = ms.Tensor(np.array([0, 0, 1, 1], np.int32))
    total, _ = objective(visible, visible, labels, labels, *objective.step_inputs(0))
    logits = network(visible, visible, None, None)[2]
    repeated = np.tile(np.array([0, 0, 1, 1, 0, 0, 1, 1]), 3)  # (l1, l2) x 3, train.py's order
    expected = ms.ops.cross_entropy(logits, ms.Tensor(repeated.astype(np.int32)))
    assert float(total.asnumpy()) == pytest.approx(float(expected.asnumpy()), rel=1e-5)
    plain = build_network(run_config(compose_config(TINY)).model, 4)
    with pytest.raises(ConfigError, match="model/expansion=dee"):
        Objective(plain, {"cpm": CenterPairMining("pool", ids_per_batch=2)}, batch_pairs=4)


def test_deen_presets_hold_the_authors_recipe():
    sysu = run_config(compose_config(["experiment=deen_sysu_all"]))
    assert (sysu.loader.height, sysu.loader.width) == (384, 144)
    assert (sysu.loader.num_ids, sysu.loader.num_instances, sysu.task.epochs) == (6, 4, 151)
    assert sysu.loss["cpm"]["weight"] == 0.8 and sysu.loss["orthogonal"]["weight"] == 0.01
    assert sysu.loss["cpm"]["ids_per_batch"] == 6 and sysu.schedule["milestones"] == [20, 80]
    assert sysu.optimizer["backbone_lr_scale"] == 0.1 and sysu.init.weights
    assert sysu.loader.augment["random_erasing"]["area"] == [0.2, 0.8]
    assert (sysu.eval.flip, sysu.eval.distance) == (True, "inner")
    regdb = run_config(compose_config(["experiment=deen_regdb_v2t"]))
    assert regdb.model["backbone"]["num_stages"] == 3
    assert regdb.model["aggregation"]["stages"] == [1, 2] and regdb.model["expansion"]["stage"] == 2
    assert regdb.loader.augment["random_erasing"]["area"] == [0.02, 0.4]
    llcm = run_config(compose_config(["experiment=deen_llcm_v2t"]))
    assert list(llcm.eval.protocol) == ["llcm_v2t"] and llcm.model["expansion"]["stage"] == 3


def test_a_deen_checkpoint_of_the_authors_code_converts_and_evaluates(tmp_path):
    manifest = json.loads((DATA / "deen_state_manifest_regdb.json").read_text())
    state = synthetic_state(manifest["entries"], manifest["seed"])
    # MFA blocks at their initial identity: random running statistics behind unnormalised
    # attention would overflow on real images (the parity test calibrates them instead).
    for name in [n for n in state if n.startswith("MFA") and ".W.1." in n]:
        if name.endswith(("weight", "bias")):
            state[name] = np.zeros_like(state[name])
    source = tmp_path / "regdb_deen.pth"
    torch_writer.save({"net": torch_writer.tensors(state), "epoch": 3}, source)
    out = tmp_path / "converted"
    config = compose_config(["task=convert", f"task.source={source}"], output_dir=out)
    summary = convert.run(run_config(config))
    assert summary["kind"] == "deen" and summary["model"]["backbone"]["num_stages"] == 3
    checkpoint = out / "converted.ckpt"
    common = TINY + [f"task.checkpoint={checkpoint}", *EAGER, "eval.distance=inner"]
    # The checkpoint's 288x144 input through a ResNet-50 DEEN: six test images per modality
    # in one padded batch of 8 (the default 32 made each call ~10 s).
    common += ["dataset.num_test_ids=3", "dataset.images_per_id=2", "loader.test_batch_size=8"]
    evaluated = tmp_path / "evaluated"
    eval_task.run(run_config(compose_config(common + ["task=eval"], output_dir=evaluated)))
    records = json.loads((evaluated / "results.json").read_text())
    assert {r["feature"] for r in records} == {"FC", "FC_att"}
    extracted = tmp_path / "extracted"
    extract.run(
        run_config(
            compose_config(common + ["task=extract", "task.split=test"], output_dir=extracted)
        )
    )
    features = sorted(str(p) for p in extracted.glob("*.npz"))
    scored = tmp_path / "scored"
    score_config = TINY + ["task=score", f"task.features=[{','.join(features)}]"]
    score_config += ["eval.distance=inner"]
    result = score.run(run_config(compose_config(score_config, output_dir=scored)))
    assert result


@pytest.mark.slow
def test_deen_learns_on_the_synthetic_data(tmp_path):
    # The default synthetic data over 10 epochs, with DEEN's own optimiser groups (everything
    # but the neck at 0.1x): measured 44-45 % rank-1 (chance 1/12), loss 16.5 -> 2.6 (20
    # epochs: 70 %, 16.4 -> 1.6).
    overrides = ["logger=none", "model=deen", "loss=deen", "model/backbone=tiny"]
    overrides += ["optimizer=sgd", "task.selection=last", "task.epochs=10"]
    out = tmp_path / "run"
    train.run(run_config(compose_config(overrides, output_dir=out)))
    losses = [
        e["total"] for e in json.loads((out / "train_history.json").read_text())["epoch_losses"]
    ]
    assert losses[-1] < 0.5 * losses[0], losses
    records = json.loads((out / "results.json").read_text())
    chance = 1 / 12  # twelve test identities
    for record in records:
        assert record["mean"]["rank1"] > 3 * chance, record["mean"]
