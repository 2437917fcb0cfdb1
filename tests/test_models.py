"""Network shapes, gradients and the model-zoo parameter-name mapping."""

import functools

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from ddag.checkpoints.names import MS_ZOO_PREFIXES, ms_zoo_to_ddag
from ddag.losses.objective import Objective
from ddag.losses.terms import BatchHardTriplet, CrossEntropy, NegativeLogLikelihood
from ddag.models.attention.cgsa import GraphStructuredAttention
from ddag.models.attention.iwpa import WeightedPartAttention
from ddag.models.backbones.resnet import ResNet
from ddag.models.ddag import DDAG, THERMAL, VISIBLE, EmbeddingNet
from tests.conftest import load_json, reference_data

ms.set_context(mode=ms.PYNATIVE_MODE)
TINY = dict(layers=(1, 1, 1, 1), widths=(4, 4, 8, 8), stem_channels=8)


def _network(stems="two_stream", num_classes=5, conv_bias=True, backbone=None, low_dim=16):
    return DDAG(
        backbone or ResNet(**TINY),
        num_classes=num_classes,
        part_attention=functools.partial(WeightedPartAttention, num_parts=3, conv_bias=conv_bias),
        graph_attention=functools.partial(GraphStructuredAttention, num_heads=4),
        stems=stems,
        low_dim=low_dim,
    )


def _batch(n=4, h=32, w=16, seed=0):
    rng = np.random.default_rng(seed)
    images = [Tensor(rng.normal(size=(n, 3, h, w)).astype(np.float32)) for _ in range(2)]
    labels = Tensor(np.array([0, 0, 1, 2][:n], np.int32))
    return images[0], images[1], labels


@pytest.mark.parametrize("stems", ["two_stream", "shared"])
def test_training_outputs_and_test_features(stems):
    net = _network(stems)
    net.set_train(True)
    visible, thermal, labels = _batch()
    objective = Objective(net, {"id": CrossEntropy("logits")})
    noise = Tensor(np.random.default_rng(0).random(net.noise_size(8), dtype=np.float32))
    outputs = net(visible, thermal, ms.ops.eye(8, 8, ms.float32), noise)
    channels = net.out_channels
    shapes = [tuple(o.shape) for o in outputs]
    assert net.output_names == ("pool", "feat", "logits", "logits_att", "graph_log_probs")
    assert shapes == [(8, channels), (8, channels), (8, 5), (8, 5), (8, 5)]
    np.testing.assert_allclose(np.exp(outputs[4].asnumpy()).sum(axis=1), 1.0, rtol=1e-5)
    net.set_train(False)
    for modality in (VISIBLE, THERMAL):
        fc, fc_att = EmbeddingNet(net, modality)(visible)
        assert fc.shape == fc_att.shape == (4, channels)
        np.testing.assert_allclose(np.linalg.norm(fc_att.asnumpy(), axis=1), 1.0, rtol=1e-5)
    assert objective.term_names == ("id",)


def test_last_stride_one_keeps_resolution():
    trunk = ResNet(**TINY, last_stride=1).make_trunk()
    stem = ResNet(**TINY).make_stem()
    out = trunk(stem(Tensor(np.zeros((1, 3, 64, 32), np.float32))))
    assert out.shape == (1, 32, 4, 2)  # 64x32 / 4 (stem) / 2 / 2; layer4 keeps its input size
    out2 = ResNet(**TINY, last_stride=2).make_trunk()(
        stem(Tensor(np.zeros((1, 3, 64, 32), np.float32)))
    )
    assert out2.shape == (1, 32, 2, 1)


def test_modalities_use_their_own_stem():
    net = _network()
    net.set_train(False)
    visible, _, _ = _batch()
    fc_v, _ = EmbeddingNet(net, VISIBLE)(visible)
    fc_t, _ = EmbeddingNet(net, THERMAL)(visible)
    assert not np.allclose(fc_v.asnumpy(), fc_t.asnumpy())


def test_every_parameter_gets_a_gradient_in_training():
    ms.set_seed(0)
    net = _network()
    objective = Objective(
        net,
        {
            "id": CrossEntropy("logits"),
            "triplet": BatchHardTriplet("pool"),
            "part": CrossEntropy("logits_att"),
            "graph": NegativeLogLikelihood("graph_log_probs", dynamic=True),
        },
    )
    objective.set_train(True)
    visible, thermal, labels = _batch()
    params = objective.trainable_params()

    def forward(v, t, lv, lt, w, noise):
        return objective(v, t, lv, lt, w, noise)

    noise = Tensor(np.random.default_rng(0).random(objective.noise_size(4), dtype=np.float32))
    grad_fn = ms.value_and_grad(forward, None, params, has_aux=True)
    _, grads = grad_fn(visible, thermal, labels, labels, Tensor(1.0, ms.float32), noise)
    zero = [p.name for p, g in zip(params, grads) if not np.any(g.asnumpy() != 0)]
    assert not zero, f"parameters without gradient: {zero}"
    # The BN shifts of the neck and of IWPA stay frozen, as in the reference.
    frozen = {
        p.name for p in net.get_parameters() if not p.requires_grad and p.name.endswith("beta")
    }
    assert frozen == {"bottleneck.beta", "part_attention.bottleneck.beta"}


@pytest.mark.slow
@pytest.mark.parametrize("stems", ["two_stream", "shared"])
def test_resnet50_names_and_shapes_match_model_zoo_manifest(stems):
    manifest = load_json(reference_data("ms_param_manifest_regdb.json"))
    zoo = {p["name"]: tuple(p["shape"]) for p in manifest["params"]}
    net = _network(
        stems,
        num_classes=manifest["class_num"],
        conv_bias=False,
        backbone=ResNet(),
        low_dim=manifest["low_dim"],
    )
    ours = {p.name: tuple(p.shape) for p in net.get_parameters()}
    mapped = {}
    for name, shape in zoo.items():
        target = ms_zoo_to_ddag(name, stems)
        if target is not None:
            mapped[target] = shape
    # Every model-zoo parameter our layout uses exists here with its shape, one to one.
    for target, shape in mapped.items():
        assert target in ours, f"{target} has no counterpart"
        assert ours[target] == shape, f"{target}: {ours[target]} vs model zoo {shape}"
    # Everything of ours is covered, except CGSA's hidden heads (the port never registered them).
    uncovered = sorted(n for n in ours if n not in mapped)
    assert uncovered and all(n.startswith("graph_attention.heads.") for n in uncovered)
    used_prefixes = {theirs for theirs, _ in MS_ZOO_PREFIXES[stems]}
    assert len(mapped) == sum(any(n.startswith(p) for p in used_prefixes) for n in zoo)


def test_graph_dropout_follows_the_noise_input():
    from ddag.models.attention.cgsa import identity_adjacency, noise_dropout

    x = Tensor(np.ones((2, 4), np.float32))
    noise = Tensor(np.array([[0.1, 0.5, 0.9, 0.2], [0.3, 0.0, 0.6, 0.25]], np.float32))
    dropped = noise_dropout(x, noise, 0.25, True).asnumpy()
    np.testing.assert_allclose(dropped, [[0, 4 / 3, 4 / 3, 0], [4 / 3, 0, 4 / 3, 4 / 3]], rtol=1e-6)
    np.testing.assert_array_equal(noise_dropout(x, noise, 0.25, False).asnumpy(), np.ones((2, 4)))
    # The same noise gives the same training forward; other noise a different one.
    graph = GraphStructuredAttention(6, 3, low_dim=4, num_heads=2)
    graph.set_train(True)
    feats = Tensor(np.random.default_rng(1).random((4, 6), dtype=np.float32))
    adjacency = identity_adjacency(Tensor(np.array([0, 1, 0, 1], np.int32)))
    rng = np.random.default_rng(2)
    first = Tensor(rng.random(graph.noise_size(4), dtype=np.float32))
    second = Tensor(rng.random(graph.noise_size(4), dtype=np.float32))
    a = graph(feats, adjacency, first).asnumpy()
    np.testing.assert_array_equal(a, graph(feats, adjacency, first).asnumpy())
    assert not np.allclose(a, graph(feats, adjacency, second).asnumpy())
