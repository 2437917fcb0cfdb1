"""Vision transformer backbones: equal to timm's VisionTransformer (plain stride) and to PMT's
ViT (stride 12, 288x144 with the position embedding resized from a 224 checkpoint) on the same
weights, loaded from .pth, .safetensors or a MindSpore .ckpt through `init.weights`; composed
with DDAG's heads and attention. Goldens: tests/data/goldens/make_vit.py (torch, timm, PMT)."""

import json
import sys

import mindspore as ms
import numpy as np
import pytest
from safetensors.numpy import save_file

from ddag.checkpoints.checkpointer import Checkpointer, InitSettings
from ddag.checkpoints.format import read_checkpoint
from ddag.config.run_config import run_config
from ddag.errors import CheckpointError
from ddag.models.backbones.vit import VisionTransformer, resize_position_embedding
from ddag.models.ddag import DDAG
from ddag.tasks import train
from tests import torch_writer
from tests.conftest import DATA, TINY, compose_config

sys.path.insert(0, str(DATA / "goldens"))
from synthetic_weights import synthetic_state  # noqa: E402

ms.set_context(mode=ms.PYNATIVE_MODE)
MANIFEST = json.loads((DATA / "vit_state_manifest.json").read_text())
GOLDEN = dict(np.load(DATA / "golden_vit.npz"))


def _images(height, width, count=2):
    rng = np.random.default_rng(MANIFEST["input_seed"])
    return rng.normal(0, 1, (count, 3, height, width)).astype(np.float32)


def _weight_file(tmp_path, manifest, suffix):
    state = synthetic_state(manifest, MANIFEST["seed"])
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch_writer.save(torch_writer.tensors(state), path)
    elif suffix == ".safetensors":
        save_file(state, str(path))
    else:
        entries = [{"name": k, "data": ms.Tensor(v)} for k, v in state.items()]
        ms.save_checkpoint(entries, str(path))
    return path


def _network(recipe, weights):
    network = DDAG(recipe, 4, stems="shared")
    report = Checkpointer().initialise(network, InitSettings(str(weights)))
    assert report.ok and report.loaded
    return network


def _tokens(network, images):
    return network._trunk(network._stem(ms.Tensor(images), 1))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".ckpt"])
def test_the_plain_vit_equals_timm_in_eval_and_train_mode(tmp_path, suffix):
    weights = _weight_file(tmp_path, MANIFEST["small"], suffix)
    recipe = VisionTransformer(192, 2, 3, stride=16, height=64, width=32, layer_norm_eps=1e-6)
    network = _network(recipe, weights)
    for mode in ("eval", "train"):
        network.set_train(mode == "train")
        cls, patches = (t.asnumpy() for t in _tokens(network, _images(64, 32)))
        np.testing.assert_allclose(cls, GOLDEN[f"timm_{mode}_cls"], atol=2e-5)
        tokens = patches.reshape(2, 192, -1).transpose(0, 2, 1)  # row-major grid, as timm's
        np.testing.assert_allclose(tokens, GOLDEN[f"timm_{mode}_patches"], atol=2e-5)


def test_the_overlapping_vit_equals_pmt_with_its_resized_position_embedding(tmp_path):
    weights = _weight_file(tmp_path, MANIFEST["imagenet"], ".pth")
    recipe = VisionTransformer(192, 2, 3, stride=12, height=288, width=144, layer_norm_eps=1e-5)
    assert recipe.grid == (23, 11)
    network = _network(recipe, weights)
    np.testing.assert_allclose(
        network.shared_stem.pos_embed.asnumpy(), GOLDEN["pmt_pos_embed"], atol=1e-6
    )
    network.set_train(False)
    cls, _ = _tokens(network, _images(288, 144))
    np.testing.assert_allclose(cls.asnumpy(), GOLDEN["pmt_cls"], atol=2e-5)


def test_position_embedding_resize_is_bilinear_with_half_pixel_centres():
    grid = np.arange(16, dtype=np.float64).reshape(4, 4)
    value = np.concatenate([[[-1.0]], grid.reshape(16, 1)])[None]  # (1, 17, 1)
    same = resize_position_embedding(value, (4, 4))
    np.testing.assert_allclose(same, value)
    doubled = resize_position_embedding(value, (8, 2))[0, 1:, 0].reshape(8, 2)
    # Rows: source 0.25 below each output centre, clamped at the edge; columns: the means.
    np.testing.assert_allclose(doubled[0], [0.5 * (0 + 1) + 0, 0.5 * (2 + 3)])
    assert doubled[-1, 0] == pytest.approx(12.5) and value[0, 0, 0] == -1.0
    with pytest.raises(ValueError, match="square grid"):
        resize_position_embedding(np.zeros((1, 11, 3)), (2, 2))


def test_a_vit_checkpoint_reloads_and_a_mismatched_spec_is_refused(tmp_path):
    config = run_config(compose_config(TINY + ["model/backbone=vit_tiny", "model.stems=shared"]))
    from ddag.checkpoints.format import save_checkpoint
    from ddag.checkpoints.meta import CheckpointMeta
    from ddag.models.architecture import build_network

    network = build_network(config.model, 4)
    save_checkpoint(tmp_path / "vit.ckpt", network, meta=CheckpointMeta(model=config.model))
    assert Checkpointer().load_network(tmp_path / "vit.ckpt").report.ok
    deeper = json.loads(json.dumps(config.model))
    deeper["backbone"]["depth"] = 40
    save_checkpoint(tmp_path / "deep.ckpt", network, meta=CheckpointMeta(model=deeper))
    with pytest.raises(CheckpointError, match=r"blocks\.12\.attn\.qkv\.weight .* vs absent"):
        Checkpointer().load_network(tmp_path / "deep.ckpt")


@pytest.mark.slow
def test_ddag_attention_on_a_vit_trains_on_the_synthetic_data(tmp_path):
    # Overlapping 16x16 patches at stride 8 give a 7 x 3 grid on the 64x32 images (stride 16:
    # 4 x 2, which learned to ~20 % rank-1 only). Measured with 2 blocks over 8 epochs: loss
    # 10.6 -> 5.6, rank-1 25-33 % (12 epochs: 4.7, 29-30 %; 4 blocks over 20 epochs: 30-43 %).
    overrides = ["logger=none", "model/backbone=vit_tiny", "model.stems=shared"]
    overrides += ["model.backbone.depth=2", "model.backbone.stride=8", "task.epochs=8"]
    overrides += ["optimizer=adam", "optimizer.lr=0.001", "task.selection=last"]
    out = tmp_path / "run"
    train.run(run_config(compose_config(overrides, output_dir=out)))
    history = json.loads((out / "train_history.json").read_text())
    losses = [epoch["total"] for epoch in history["epoch_losses"]]
    assert losses[-1] < 0.6 * losses[0], losses
    for record in json.loads((out / "results.json").read_text()):
        assert record["mean"]["rank1"] > 2 / 12, record["mean"]  # 12 test identities


def test_a_pmt_checkpoint_converts_and_gives_the_authors_class_token(tmp_path):
    from ddag.tasks import convert

    state = synthetic_state(MANIFEST["imagenet"], MANIFEST["seed"])
    state = {f"base.{k}": v for k, v in state.items() if not k.startswith("head")}
    state["base.pos_embed"] = GOLDEN["pmt_pos_embed"].astype(np.float32)  # as PMT resized it
    rng = np.random.default_rng(0)
    state.update(
        {
            "bottleneck.weight": np.ones(192, np.float32),
            "bottleneck.bias": np.zeros(192, np.float32),
            "bottleneck.running_mean": np.zeros(192, np.float32),
            "bottleneck.running_var": np.ones(192, np.float32),
            "classifier.weight": rng.normal(0, 0.001, (4, 192)).astype(np.float32),
        }
    )
    source = tmp_path / "pmt_sysu.pth"
    torch_writer.save(torch_writer.tensors(state), source)
    out = tmp_path / "converted"
    summary = convert.run(
        run_config(compose_config(["task=convert", f"task.source={source}"], output_dir=out))
    )
    assert summary["kind"] == "pmt" and summary["model"]["backbone"]["num_heads"] == 3
    loaded = Checkpointer().load_network(out / "converted.ckpt")
    assert loaded.report.ok and (loaded.input.height, loaded.input.width) == (288, 144)
    network = loaded.network
    network.set_train(False)
    cls, _ = _tokens(network, _images(288, 144))
    np.testing.assert_allclose(cls.asnumpy(), GOLDEN["pmt_cls"], atol=2e-5)


def test_mixed_precision_runs_the_blocks_in_float16_and_layer_norm_in_float32(tmp_path):
    """runtime.amp_level O1/O2 on a ViT: matmuls in float16, LayerNorm and the attention
    softmax in float32 (torch autocast's split, as PMT trains); features stay close."""
    from ddag.models.backbones.vit import LayerNorm

    weights = _weight_file(tmp_path, MANIFEST["small"], ".pth")
    recipe = VisionTransformer(192, 2, 3, stride=16, height=64, width=32, layer_norm_eps=1e-6)
    network = _network(recipe, weights)
    network.set_train(False)
    full = network._pooled(_tokens(network, _images(64, 32))).asnumpy()
    network = _network(recipe, weights)  # a fresh one: a compiled cell keeps its first graph
    network.set_train(False)
    network.use_mixed_precision()
    norms = [cell for _, cell in network.cells_and_names() if isinstance(cell, LayerNorm)]
    assert len(norms) == 5 and all(cell.get_flags().get("fp32") for cell in norms)
    assert network.trunk.blocks[0].attn.qkv.get_flags().get("fp16")
    half = network._pooled(_tokens(network, _images(64, 32)))
    assert half.dtype == ms.float32
    difference = np.abs(half.asnumpy() - full)
    assert 0 < difference.max() < 0.05 * np.abs(full).max()


def test_the_modality_embedding_adds_scaled_per_modality_vectors_to_every_token(tmp_path):
    """TransReID's side-information embedding with the modality as the camera: tokens +
    scale x sie_embed[modality]; ImageNet files load without it (it keeps its own values)."""
    weights = _weight_file(tmp_path, MANIFEST["small"], ".pth")
    recipe = VisionTransformer(
        192, 2, 3, height=64, width=32, modality_embedding=True, modality_scale=3.0
    )
    network = _network(recipe, weights)  # strict: sie_embed is the one optional entry
    network.set_train(False)
    images = ms.Tensor(_images(64, 32))
    sie = network.shared_stem.sie_embed.asnumpy()
    visible = network.shared_stem(images, ms.Tensor([0, 0], ms.int32)).asnumpy()
    thermal = network.shared_stem(images, ms.Tensor([1, 1], ms.int32)).asnumpy()
    np.testing.assert_allclose(
        visible - thermal, np.broadcast_to(3 * (sie[0] - sie[1]), visible.shape), atol=1e-5
    )
    mixed = network._stem(images, 2).asnumpy()  # THERMAL
    np.testing.assert_allclose(mixed, thermal, atol=1e-6)
    with pytest.raises(ValueError, match="modality_embedding needs stems=shared"):
        DDAG(recipe, 4, stems="two_stream")


def test_pmt_with_the_modality_embedding_trains_and_keeps_it_in_its_checkpoint(tmp_path):
    overrides = TINY + ["model=pmt", "loss=pmt", "model/backbone=vit_tiny", "+debug=fast"]
    overrides += ["model.backbone.depth=1", "model.backbone.modality_embedding=true"]
    overrides += ["runtime.mode=pynative", "runtime.jit_step=false", "task.selection=last"]
    config = run_config(compose_config(overrides, output_dir=tmp_path))
    summary = train.run(config)
    assert "v2t/FC/rank1" in summary
    params, _ = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert params["shared_stem.sie_embed"].shape == (2, 1, 192)
