"""Backbone family, IBN-a, non-local blocks and GeM pooling: structure and known answers."""

import mindspore as ms
import numpy as np
import pytest
from hydra.utils import instantiate
from mindspore import Tensor

from ddag.config.run_config import run_config
from ddag.models.attention.non_local import NonLocalBlock
from ddag.models.backbones.resnet import ResNet
from ddag.models.backbones.resnet_ibn import IBN
from ddag.models.ddag import DDAG
from ddag.tasks import train
from tests.conftest import TINY, compose_config

ms.set_context(mode=ms.PYNATIVE_MODE)

# torchvision's parameter counts (weights, BN scale and shift) without the 1000-way fc layer.
TORCHVISION_BACKBONE_PARAMS = {
    "resnet18": 11_689_512 - 513_000,
    "resnet34": 21_797_672 - 513_000,
    "resnet50": 25_557_032 - 2_049_000,
}


def _count(*cells):
    return sum(int(np.prod(p.shape)) for cell in cells for p in cell.trainable_params())


@pytest.mark.parametrize("name", sorted(TORCHVISION_BACKBONE_PARAMS))
def test_each_resnet_config_has_torchvision_s_parameters(name):
    recipe = instantiate(compose_config([f"model/backbone={name}"]).model.backbone)
    assert _count(recipe.make_stem(), recipe.make_trunk()) == TORCHVISION_BACKBONE_PARAMS[name]


@pytest.mark.parametrize(
    "name, layers, block, channels",
    [
        ("resnet101", [3, 4, 23, 3], "bottleneck", 2048),
        ("resnet152", [3, 8, 36, 3], "bottleneck", 2048),
        ("resnet50_ibn_a", [3, 4, 6, 3], "bottleneck", 2048),
        ("resnet18", [2, 2, 2, 2], "basic", 512),
    ],
)
def test_deep_resnet_configs_describe_their_network(name, layers, block, channels):
    recipe = instantiate(compose_config([f"model/backbone={name}"]).model.backbone)
    assert (list(recipe.layers), recipe.block, recipe.out_channels) == (layers, block, channels)
    assert recipe.last_stride == 1


@pytest.mark.slow
def test_resnet18_trains_with_the_fast_debug_run(tmp_path):
    cfg = compose_config(
        TINY
        + [
            "+debug=fast",
            "model/backbone=resnet18",
            "runtime.mode=pynative",
            "runtime.jit_step=false",
        ],
        output_dir=tmp_path,
    )
    summary = train.run(run_config(cfg))
    history = (tmp_path / "train_history.json").read_text()
    assert "v2t/FC/rank1" in summary and "NaN" not in history


def test_ibn_normalises_half_the_channels_per_instance():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(2, 4, 5, 3)).astype(np.float32)
    ibn = IBN(4)
    ibn.set_train(True)
    out = ibn(Tensor(x)).asnumpy()
    half = x[:, :2]
    expected = (half - half.mean((2, 3), keepdims=True)) / np.sqrt(
        half.var((2, 3), keepdims=True) + 1e-5
    )
    np.testing.assert_allclose(out[:, :2], expected, atol=1e-4)
    batch = x[:, 2:]  # batch statistics over (N, H, W)
    mean, var = batch.mean((0, 2, 3), keepdims=True), batch.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out[:, 2:], (batch - mean) / np.sqrt(var + 1e-5), atol=1e-4)


def test_non_local_block_equals_the_agw_formula_and_starts_as_identity():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 4, 3)).astype(np.float32)
    block = NonLocalBlock(6, inter_channels=2)
    block.set_train(False)
    np.testing.assert_allclose(block(Tensor(x)).asnumpy(), x, atol=1e-6)  # BN scale starts at 0
    for cell in (block.g, block.theta, block.phi, block.W):
        cell.weight.set_data(Tensor(rng.normal(size=cell.weight.shape).astype(np.float32)))
        cell.bias.set_data(Tensor(rng.normal(size=cell.bias.shape).astype(np.float32)))
    block.bn.gamma.set_data(Tensor(np.ones(6, np.float32)))

    def conv(cell, v):
        w, b = cell.weight.asnumpy()[:, :, 0, 0], cell.bias.asnumpy()
        return np.einsum("oc,bchw->bohw", w, v) + b[None, :, None, None]

    flat = lambda v: v.reshape(v.shape[0], v.shape[1], -1)  # noqa: E731
    g = flat(conv(block.g, x)).transpose(0, 2, 1)
    theta = flat(conv(block.theta, x)).transpose(0, 2, 1)
    phi = flat(conv(block.phi, x))
    y = ((theta @ phi) / 12 @ g).transpose(0, 2, 1).reshape(2, 2, 4, 3)
    w_y = conv(block.W, y) / np.sqrt(1 + 1e-5)  # eval BN: mean 0, variance 1, scale 1
    np.testing.assert_allclose(block(Tensor(x)).asnumpy(), x + w_y, rtol=1e-4, atol=1e-4)


def test_gem_pooling_is_the_generalised_mean():
    net = DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 4), 3, pooling="gem", gem_p=3.0)
    fmap = np.abs(np.random.default_rng(2).normal(size=(2, 32, 4, 2))).astype(np.float32)
    pooled, _ = net._trunk_features(Tensor(fmap))
    expected = ((fmap**3).mean((2, 3)) + 1e-12) ** (1 / 3)
    np.testing.assert_allclose(pooled.asnumpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 4), 3, pooling="max")


def test_agw_model_has_non_local_blocks_after_the_last_blocks_and_gem():
    cfg = compose_config(
        [
            "model=agw",
            "model/backbone=resnet50",
            "model.backbone.widths=[4,4,8,8]",
            "model.backbone.stem_channels=4",
            "model.backbone.non_local=[0,2,3,0]",
        ]
    )

    from ddag.models.architecture import build_network

    network = build_network(run_config(cfg).model, 5)
    assert network.gem and not network.has_part_attention and not network.has_graph_attention
    assert network.trunk.non_local_start == (-1, 2, 3, -1)
    names = {p.name for p in network.get_parameters()}
    assert {"trunk.nl2.1.theta.weight", "trunk.nl3.2.bn.gamma"} <= names
    assert not any(n.startswith("trunk.nl1") or n.startswith("trunk.nl4") for n in names)
    with pytest.raises(ValueError, match="cannot follow"):
        ResNet((1, 1, 1, 1), (4, 4, 8, 8), 4, non_local=(0, 2, 0, 0)).make_trunk()
