"""Our code against the reference implementations' outputs in tests/data/golden_public.json.

Metric cases, the batch-hard triplet loss, the same-identity adjacency, one GAT layer, IWPA,
the identity sampler's draw, the MindSpore port's learning-rate table and the SYSU-MM01
query/gallery file selection, each with the tolerance stated in tests/data/README.md.
"""

import functools
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from ddag.data.datasets.sysu import SYSUDataset
from ddag.data.sampler import IdentitySampler, draw_batches
from ddag.engine.schedules import PortStepDecay
from ddag.evaluation.gallery_rules import RULES
from ddag.evaluation.metrics import rank_metrics
from ddag.evaluation.protocols import SYSUProtocol
from ddag.losses.terms import BatchHardTriplet
from ddag.models.attention.cgsa import GraphAttentionLayer, identity_adjacency
from ddag.models.attention.iwpa import WeightedPartAttention
from tests.conftest import load_json, reference_data

ms.set_context(mode=ms.PYNATIVE_MODE)


@functools.lru_cache(maxsize=1)
def golden() -> dict:
    return load_json(reference_data("golden_public.json"))


def _ids(group: str):
    node = golden()
    for key in group.split("."):
        node = node[key]
    return [case["id"] for case in node]


def _case(group: str, case_id: str) -> dict:
    node = golden()
    for key in group.split("."):
        node = node[key]
    return next(case for case in node if case["id"] == case_id)


def test_the_fixture_holds_every_public_case():
    data = golden()
    assert len(data["cases"]) == 36
    assert {c["protocol"] for c in data["cases"]} == {"sysu", "regdb"}
    assert len(data["loss_cases"]["triplet"]) == 6 and len(data["module_cases"]["gat_layer"]) == 6


@pytest.mark.parametrize("case_id", _ids("cases"))
def test_rank_metrics_reproduce_the_reference(case_id):
    case = _case("cases", case_id)
    cams = {}
    if case["protocol"] == "sysu":
        cams = dict(
            query_cams=np.array(case["query_cams"]), gallery_cams=np.array(case["gallery_cams"])
        )
    result = rank_metrics(
        np.array(case["distmat"]),
        np.array(case["query_ids"]),
        np.array(case["gallery_ids"]),
        max_rank=case["max_rank"],
        rule=RULES[case["protocol"]],
        **cams,
    )
    expected = case["expected"]
    # The reference shortens the CMC to the gallery size; we pad it with its last value.
    kept = len(expected["cmc"])
    np.testing.assert_allclose(result.cmc[:kept], expected["cmc"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(result.cmc[kept:], expected["cmc"][-1], atol=1e-6, rtol=0)
    assert result.mAP == pytest.approx(expected["mAP"], abs=1e-9)
    assert result.mINP == pytest.approx(expected["mINP"], abs=1e-9)


@pytest.mark.parametrize("case_id", _ids("loss_cases.triplet"))
def test_batch_hard_triplet_reproduces_the_reference(case_id):
    case = _case("loss_cases.triplet", case_id)
    term = BatchHardTriplet("pool", margin=case["margin"])
    value = term(
        Tensor(np.array(case["features"], np.float32)), Tensor(np.array(case["labels"], np.int32))
    )
    assert float(value) == pytest.approx(case["expected"]["loss"], abs=1e-6)


@pytest.mark.parametrize("case_id", _ids("loss_cases.adjacency"))
def test_adjacency_reproduces_the_reference(case_id):
    case = _case("loss_cases.adjacency", case_id)
    labels = np.array(case["labels_visible"] + case["labels_thermal"], np.int32)
    adjacency = identity_adjacency(Tensor(labels)).asnumpy()
    np.testing.assert_allclose(adjacency, case["expected"]["adj_norm"], atol=1e-6)


@pytest.mark.parametrize("case_id", _ids("module_cases.gat_layer"))
def test_gat_layer_reproduces_the_reference(case_id):
    case = _case("module_cases.gat_layer", case_id)
    weight = np.array(case["W"], np.float32)
    layer = GraphAttentionLayer(
        weight.shape[0], weight.shape[1], dropout=0.2, alpha=case["alpha"], concat=case["concat"]
    )
    layer.W.set_data(Tensor(weight))
    layer.a.set_data(Tensor(np.array(case["a"], np.float32)))
    layer.set_train(False)  # the reference case is evaluated without dropout
    adjacency = np.array(case["adj"], np.float32)
    noise = Tensor(np.zeros(adjacency.shape, np.float32))
    out = layer(Tensor(np.array(case["x"], np.float32)), Tensor(adjacency), noise).asnumpy()
    np.testing.assert_allclose(out, case["expected"]["out"], atol=1e-5, rtol=0)


def _iwpa(case) -> WeightedPartAttention:
    channels = case["C"]
    module = WeightedPartAttention(channels, num_parts=case["part"], conv_bias=True)
    for name in ("fc1", "fc2", "fc3"):
        conv = getattr(module, name)
        weight = np.array(case[name], np.float32).reshape(channels, channels, 1, 1)
        conv.weight.set_data(Tensor(weight))
        conv.bias.set_data(Tensor(np.zeros(channels, np.float32)))  # the reference case: zero
    module.gate.set_data(Tensor(np.array(case["gate"], np.float32)))
    bn = module.bottleneck
    for ours, theirs in (
        ("gamma", "bn_weight"),
        ("beta", "bn_bias"),
        ("moving_mean", "bn_running_mean"),
        ("moving_variance", "bn_running_var"),
    ):
        getattr(bn, ours).set_data(Tensor(np.array(case[theirs], np.float32)))
    return module


@pytest.mark.parametrize("case_id", _ids("module_cases.iwpa"))
@pytest.mark.parametrize("train", [False, True])
def test_iwpa_reproduces_the_reference(case_id, train):
    case = _case("module_cases.iwpa", case_id)
    module = _iwpa(case)
    module.set_train(train)
    x = Tensor(np.array(case["x"], np.float32).reshape(case["x_shape"]))
    out = module(x, Tensor(np.array(case["feat"], np.float32))).asnumpy()
    expected = case["expected"]["out_train_batch_stats" if train else "out_eval"]
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("case_id", _ids("module_cases.identity_sampler"))
def test_sampler_draws_the_reference_indices_from_the_same_generator(case_id):
    case = _case("module_cases.identity_sampler", case_id)
    visible, thermal = np.array(case["color_labels"]), np.array(case["thermal_labels"])
    identities = np.unique(visible)
    p, k = case["batch_ids"], case["num_pos"]
    sampler = IdentitySampler(visible, thermal, p, k)
    index1, index2 = draw_batches(
        np.random.RandomState(case["np_random_seed"]),  # the reference's np.random.seed(s)
        identities,
        {i: np.flatnonzero(visible == i) for i in identities},
        {i: np.flatnonzero(thermal == i) for i in identities},
        p,
        k,
        sampler.batches_per_epoch,
    )
    np.testing.assert_array_equal(index1, case["expected"]["index1"])
    np.testing.assert_array_equal(index2, case["expected"]["index2"])
    assert len(sampler) == len(case["expected"]["index1"])


@pytest.mark.parametrize("case_id", _ids("module_cases.ms_port_lr_schedule"))
def test_port_schedule_reproduces_the_port_table(case_id):
    case = _case("module_cases.ms_port_lr_schedule", case_id)
    schedule = PortStepDecay(case["warmup_steps"], case["start_decay"], case["end_decay"])
    lr = schedule.per_step(case["base_lr"], case["epochs"], steps_per_epoch=1)
    np.testing.assert_allclose(lr, case["lr_per_epoch"], rtol=1e-6)


@pytest.mark.parametrize("case_id", _ids("sysu_file_selection"))
def test_sysu_reader_and_protocol_pick_the_reference_files(case_id, tmp_path):
    case = _case("sysu_file_selection", case_id)
    for folder, files in case["tree"].items():
        (tmp_path / folder).mkdir(parents=True)
        for name in files:
            (tmp_path / folder / name).write_bytes(b"not decoded here")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "test_id.txt").write_text(",".join(str(i) for i in case["test_ids"]))
    split = SYSUDataset(str(tmp_path)).test_split()

    def relative(image_set, indices):
        return [str(Path(image_set.names[i]).relative_to(tmp_path)) for i in indices]

    for search in ("all", "indoor"):
        protocol = SYSUProtocol(search=search)
        for trial in range(10):
            _, query, _, gallery = protocol.select(split, trial)
            assert relative(split.thermal, query) == case[f"query_{search}"]["files"]
            picked = case["trials"][search][str(trial)]
            assert relative(split.visible, gallery) == picked["files"], (search, trial)
            np.testing.assert_array_equal(split.visible.ids[gallery], picked["ids"])
            np.testing.assert_array_equal(split.visible.cams[gallery], picked["cams"])
