"""Loss terms, adjacency and dynamic weight against hand-computed values."""

import functools

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from ddag.losses.dynamic_weight import DynamicGraphWeight
from ddag.losses.objective import Objective
from ddag.losses.terms import BatchHardTriplet, CrossEntropy, NegativeLogLikelihood
from ddag.models.attention.cgsa import identity_adjacency
from ddag.models.backbones.resnet import ResNet
from ddag.models.ddag import DDAG

ms.set_context(mode=ms.PYNATIVE_MODE)


def test_cross_entropy_hand_computed():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
    labels = np.array([0, 0], np.int32)
    expected = np.mean([np.log(1 + np.exp(-2.0)), np.log(1 + np.exp(1.0))])
    value = CrossEntropy("logits")(Tensor(logits), Tensor(labels))
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_nll_hand_computed():
    log_probs = np.log(np.array([[0.5, 0.5], [0.2, 0.8]], np.float32))
    value = NegativeLogLikelihood("graph_log_probs")(
        Tensor(log_probs), Tensor(np.array([1, 0], np.int32))
    )
    assert float(value) == pytest.approx(-(np.log(0.5) + np.log(0.2)) / 2, rel=1e-5)


def test_batch_hard_triplet_hand_computed():
    # 1-D points: a=0 (id 0), b=1 (id 0), c=3 (id 1), d=3.5 (id 1).
    feats = np.array([[0.0], [1.0], [3.0], [3.5]], np.float32)
    labels = np.array([0, 0, 1, 1], np.int32)
    # anchor: (hardest pos, hardest neg) = a (1, 3), b (1, 2), c (0.5, 2), d (0.5, 2.5)
    margin = 0.3
    expected = np.mean(
        [max(0, ap - an + margin) for ap, an in [(1, 3), (1, 2), (0.5, 2), (0.5, 2.5)]]
    )
    value = BatchHardTriplet("pool", margin=margin)(Tensor(feats), Tensor(labels))
    assert float(value) == pytest.approx(expected, abs=1e-5)
    # Overlapping identities give a positive loss: hardest pair (1 vs 0.5) -> 0.5 + 0.3.
    feats[2] = [0.5]
    value = BatchHardTriplet("pool", margin=margin)(Tensor(feats), Tensor(labels))
    assert float(value) > 0.3


def test_identity_adjacency_hand_computed():
    labels = Tensor(np.array([0, 1, 0], np.int32))
    adjacency = identity_adjacency(labels).asnumpy()
    raw = np.array([[2, 0, 1], [0, 2, 0], [1, 0, 2]], np.float32)
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(adjacency, expected, rtol=1e-6)


def test_dynamic_weight_follows_previous_epoch_mean():
    weight = DynamicGraphWeight()
    assert weight.value == 0.0
    for loss in (3.0, 5.0):
        weight.accumulate(loss)
    assert weight.value == 0.0  # unchanged during the epoch
    assert weight.end_epoch() == pytest.approx(1 / (1 + 4.0))
    weight.accumulate(1.0)
    assert weight.end_epoch() == pytest.approx(0.5)
    restored = DynamicGraphWeight()
    restored.load_state_dict(weight.state_dict())
    assert restored.value == pytest.approx(0.5)


def _tiny_network(graph=True, part=True):
    from ddag.models.attention.cgsa import GraphStructuredAttention
    from ddag.models.attention.iwpa import WeightedPartAttention

    return DDAG(
        ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8),
        num_classes=3,
        part_attention=functools.partial(WeightedPartAttention, num_parts=2) if part else None,
        graph_attention=functools.partial(GraphStructuredAttention, num_heads=2) if graph else None,
        low_dim=8,
    )


def _terms():
    return {
        "id": CrossEntropy("logits"),
        "triplet": BatchHardTriplet("pool", weight=2.0),
        "part": CrossEntropy("logits_att"),
        "graph": NegativeLogLikelihood("graph_log_probs", dynamic=True),
    }


def test_objective_applies_weights_and_dynamic_graph_weight():
    ms.set_seed(0)
    objective = Objective(_tiny_network(), _terms())
    objective.set_train(False)  # no dropout: the same forward for both calls
    rng = np.random.default_rng(0)
    visible = Tensor(rng.normal(size=(4, 3, 32, 16)).astype(np.float32))
    thermal = Tensor(rng.normal(size=(4, 3, 32, 16)).astype(np.float32))
    labels = Tensor(np.array([0, 0, 1, 2], np.int32))
    noise = Tensor(rng.random(objective.noise_size(4), dtype=np.float32))
    for graph_weight in (0.0, 0.7):
        weight = Tensor(graph_weight, ms.float32)
        total, terms = objective(visible, thermal, labels, labels, weight, noise)
        values = [float(t) for t in terms]
        assert objective.term_names == ("id", "triplet", "part", "graph")
        expected = values[0] + 2.0 * values[1] + values[2] + graph_weight * values[3]
        assert float(total) == pytest.approx(expected, rel=1e-5)


def test_objective_skips_terms_of_missing_branches():
    objective = Objective(_tiny_network(graph=False, part=False), _terms())
    assert objective.term_names == ("id", "triplet")


def _reference_wrt(features, labels):
    """AGW's TripletLoss_WRT: CAJ's ADP with alpha 1, gamma 1 and the plain soft margin (the
    two reference functions share softmax_weights and SoftMarginLoss; see _reference_adp)."""
    return _reference_adp(features, labels, alpha=1.0, gamma=1.0, square=0)


def test_weighted_regularized_triplet_equals_the_agw_formula():
    from ddag.losses.wrt import WeightedRegularizedTriplet

    rng = np.random.default_rng(0)
    features = rng.normal(size=(8, 5)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int32)
    value = WeightedRegularizedTriplet("pool")(Tensor(features), Tensor(labels))
    assert float(value) == pytest.approx(
        _reference_wrt(features.astype(np.float64), labels), rel=1e-5
    )
    # Well separated identities cost almost nothing; swapped labels cost more than ln 2.
    apart = np.array([[0.0], [0.1], [10.0], [10.1]], np.float32)
    ids = np.array([0, 0, 1, 1], np.int32)
    assert float(WeightedRegularizedTriplet("pool")(Tensor(apart), Tensor(ids))) < 1e-3
    swapped = np.array([0, 1, 0, 1], np.int32)
    assert float(WeightedRegularizedTriplet("pool")(Tensor(apart), Tensor(swapped))) > np.log(2)


def test_label_smoothing_cross_entropy_hand_computed():
    from ddag.losses.terms import LabelSmoothingCrossEntropy

    logits = np.array([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0]], np.float32)
    labels = np.array([0, 2], np.int32)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    target = np.full((2, 3), 0.1 / 3)
    target[[0, 1], labels] += 0.9
    expected = -(target * log_p).sum(1).mean()
    value = LabelSmoothingCrossEntropy("logits", epsilon=0.1)(Tensor(logits), Tensor(labels))
    assert float(value) == pytest.approx(expected, rel=1e-5)
    plain = LabelSmoothingCrossEntropy("logits", epsilon=0.0)(Tensor(logits), Tensor(labels))
    assert float(plain) == pytest.approx(
        float(CrossEntropy("logits")(Tensor(logits), Tensor(labels)))
    )
    with pytest.raises(ValueError, match="epsilon"):
        LabelSmoothingCrossEntropy("logits", epsilon=1.0)


def test_hetero_center_hand_computed():
    from ddag.losses.hetero_center import HeteroCenter

    # Visible rows 0-3 (ids 0, 0, 1, 1), thermal rows 4-7 (ids 1, 0, 1, 0), 1-D features.
    features = np.array([[0.0], [2.0], [5.0], [5.0], [9.0], [4.0], [7.0], [2.0]], np.float32)
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0], np.int32)
    # id 0: visible centre 1, thermal centre 3 -> 4; id 1: visible 5, thermal 8 -> 9.
    value = HeteroCenter("pool")(Tensor(features), Tensor(labels))
    assert float(value) == pytest.approx(13.0, rel=1e-6)
    with_margin = HeteroCenter("pool", margin=5.0)(Tensor(features), Tensor(labels))
    assert float(with_margin) == pytest.approx(4.0, rel=1e-6)  # max(0, 4-5) + max(0, 9-5)


def test_graph_branch_inputs_repeat_per_step_and_carry_the_weight_through_a_checkpoint():
    from ddag.losses.graph_branch import GraphBranchInputs

    branch = GraphBranchInputs(noise_size=6, seed=3)
    weight, noise = branch.step_inputs(5)
    assert float(weight.asnumpy()) == 0.0  # the reference's w_G of the first epoch
    expected = np.random.default_rng((3, 5)).random(6, dtype=np.float32)
    np.testing.assert_array_equal(noise.asnumpy(), expected)
    assert not np.array_equal(branch.noise(6), expected)
    for loss in (1.0, 3.0):
        branch.step_end(loss)
    branch.epoch_end()
    assert branch.scalars() == {"graph_weight": pytest.approx(1 / (1 + 2.0))}
    branch.step_end(5.0)  # mid-epoch: the running sum is state too
    restored = GraphBranchInputs(noise_size=6, seed=3)
    restored.load_state_dict(branch.state_dict())
    restored.epoch_end(), branch.epoch_end()
    assert restored.scalars() == branch.scalars() == {"graph_weight": pytest.approx(1 / 6)}


def test_objective_state_keeps_the_checkpoint_format_of_earlier_versions():
    objective = Objective(_tiny_network(), _terms(), batch_pairs=2, seed=0)
    state = objective.state_dict()
    assert set(state) == {"graph_weight"} and set(state["graph_weight"]) == {
        "value",
        "sum",
        "count",
    }
    objective.load_state_dict({"graph_weight": {"value": 0.25}})  # an early checkpoint's form
    assert objective.scalars() == {"graph_weight": 0.25}


def _reference_adp(features, labels, alpha=1.0, gamma=1.0, square=1):
    """CAJ's TripletLoss_ADP transcribed in numpy (ICCV21_CAJ/loss.py)."""
    sq = (features**2).sum(1, keepdims=True)
    dist = np.sqrt(np.clip(sq + sq.T - 2 * features @ features.T, 1e-12, None))
    is_pos = (labels[:, None] == labels[None, :]).astype(np.float64)
    is_neg = 1 - is_pos

    def softmax_weights(d, mask):
        diff = d - (d * mask).max(1, keepdims=True)
        z = (np.exp(diff) * mask).sum(1, keepdims=True) + 1e-6
        return np.exp(diff) * mask / z

    dist_ap, dist_an = dist * is_pos, dist * is_neg
    furthest = (dist_ap * softmax_weights(dist_ap * alpha, is_pos)).sum(1)
    closest = (dist_an * softmax_weights(-dist_an * alpha, is_neg)).sum(1)
    if square == 0:
        x, y = gamma * (closest - furthest), np.ones_like(furthest)
    else:
        x = np.minimum((furthest - closest) ** 2 * gamma, 88)
        y1 = (furthest > closest).astype(np.float64)
        y = -(y1 + (y1 - 1))
    return np.log1p(np.exp(-y * x)).mean()  # SoftMarginLoss


@pytest.mark.parametrize("alpha,gamma,square", [(1, 1, 1), (2, 0.5, 1), (1, 1, 0), (3, 2, 0)])
def test_adaptive_triplet_equals_the_caj_formula(alpha, gamma, square):
    from ddag.errors import ConfigError
    from ddag.losses.adp import AdaptiveTriplet

    rng = np.random.default_rng(1)
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2], np.int32)
    for scale in (0.3, 1.0, 3.0):  # both signs of d_ap - d_an occur
        features = (scale * rng.normal(size=(9, 6))).astype(np.float32)
        term = AdaptiveTriplet("pool", alpha=alpha, gamma=gamma, square=square)
        value = term(Tensor(features), Tensor(labels))
        expected = _reference_adp(features.astype(np.float64), labels, alpha, gamma, square)
        assert float(value) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    with pytest.raises(ConfigError, match="square=2 must be 0 or 1"):
        AdaptiveTriplet("pool", square=2)
