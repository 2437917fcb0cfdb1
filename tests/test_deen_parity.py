"""DEEN equals its authors' code (ZYK100/LLCM DEEN/) under converted weights: features in eval
mode, the training forward, every loss term and the gradients, for the SYSU-MM01/LLCM variant
and the RegDB variant (layer4 dropped). tests/data/goldens/make_deen.py made the goldens with
torch (see tests/data/README.md)."""

import json
import sys

import mindspore as ms
import numpy as np
import pytest

from ddag.checkpoints.conversion import deen_network
from ddag.checkpoints.names import deen_name, torch_to_mindspore_names
from ddag.losses.cpm import CenterPairMining, OutputValue
from ddag.losses.objective import Objective
from ddag.losses.terms import BatchHardTriplet, CrossEntropy
from ddag.models.ddag import THERMAL, VISIBLE
from tests.conftest import DATA

sys.path.insert(0, str(DATA / "goldens"))
from synthetic_weights import synthetic_state  # noqa: E402

ms.set_context(mode=ms.PYNATIVE_MODE)
TERMS = ("id", "triplet", "cpm", "orthogonal")


def _torch_state(dataset):
    manifest = json.loads((DATA / f"deen_state_manifest_{dataset}.json").read_text())
    golden = dict(np.load(DATA / f"golden_deen_{dataset}.npz"))
    state = synthetic_state(manifest["entries"], manifest["seed"])
    state.update({k[len("running/") :]: v for k, v in golden.items() if k.startswith("running/")})
    return state, golden


@pytest.fixture(scope="module", params=["sysu", "regdb"])
def converted(request):
    state, golden = _torch_state(request.param)
    network, spec, report, unused = deen_network(torch_to_mindspore_names(state))
    return request.param, network, spec, report, golden, state


def _normalised(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_converter_reads_the_variant_off_the_tensors(converted):
    dataset, network, spec, report, _, _ = converted
    assert report.ok
    if dataset == "regdb":
        assert spec["backbone"]["num_stages"] == 3 and spec["expansion"]["stage"] == 2
        assert spec["aggregation"]["stages"] == [1, 2] and network.out_channels == 1024
    else:
        assert spec["backbone"]["num_stages"] == 4 and spec["expansion"]["stage"] == 3
        assert spec["aggregation"]["stages"] == [1, 2, 3] and network.out_channels == 2048


def test_eval_features_equal_the_authors(converted):
    _, network, _, _, golden, _ = converted
    network.set_train(False)
    for modality, images in ((VISIBLE, golden["visible"]), (THERMAL, golden["thermal"])):
        feature_map = network._trunk(network._stem(ms.Tensor(images), modality))
        pool, feat = (t.asnumpy() for t in network._trunk_features(feature_map))
        np.testing.assert_allclose(_normalised(pool), golden[f"eval_pool_{modality}"], atol=2e-5)
        np.testing.assert_allclose(_normalised(feat), golden[f"eval_feat_{modality}"], atol=2e-5)


def test_test_features_are_the_authors_distances_joined(converted):
    """FC . FC = test.py's distmat7 / 6 and FC_att . FC_att = distmat8 / 3 (no flip)."""
    _, network, _, _, golden, _ = converted
    network.set_train(False)
    fc, fc_att = (t.asnumpy() for t in network.embed(ms.Tensor(golden["visible"]), VISIBLE))
    n = len(golden["visible"])
    pool = golden["eval_pool_1"].reshape(3, n, -1)
    feat = golden["eval_feat_1"].reshape(3, n, -1)
    distmat7 = sum(p @ p.T for p in pool) + sum(f @ f.T for f in feat)
    distmat8 = 0.1 * sum(p @ p.T for p in pool) + 0.9 * sum(f @ f.T for f in feat)
    np.testing.assert_allclose(fc @ fc.T, distmat7 / 6, atol=2e-5)
    np.testing.assert_allclose(fc_att @ fc_att.T, distmat8 / 3, atol=2e-5)


def _objective(network, golden):
    terms = {
        "id": CrossEntropy("logits"),
        "triplet": BatchHardTriplet("pool", margin=0.3),
        "cpm": CenterPairMining("pool", weight=0.8, ids_per_batch=2, margin=0.2),
        "orthogonal": OutputValue("orthogonality", weight=0.01),
    }
    return Objective(network, terms, batch_pairs=len(golden["visible"]))


def test_training_forward_losses_and_gradients_equal_the_authors(converted):
    _, network, _, _, golden, state = converted
    network.expansion.dropout = None  # the goldens ran with p = 0
    objective = _objective(network, golden)
    objective.set_train(True)
    labels = ms.Tensor(golden["labels"].astype(np.int32))
    inputs = (ms.Tensor(golden["visible"]), ms.Tensor(golden["thermal"]), labels, labels)
    outputs = network(inputs[0], inputs[1], None, None)
    np.testing.assert_allclose(outputs[0].asnumpy(), golden["train_pool"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs[2].asnumpy(), golden["train_logits"], rtol=1e-4, atol=1e-4)
    weight, noise, _ = objective.step_inputs(0)

    def forward(*batch):
        return objective(*batch, weight, noise)

    params = objective.trainable_params()
    grad_fn = ms.value_and_grad(forward, None, params, has_aux=True)
    (total, values), grads = grad_fn(*inputs)
    got = dict(zip(TERMS, (float(v.asnumpy()) for v in values)))
    for term in TERMS:
        assert got[term] == pytest.approx(float(golden[f"loss_{term}"]), rel=2e-5), term
    assert float(total.asnumpy()) == pytest.approx(float(golden["loss_total"]), rel=2e-5)
    ours = {p.name: g.asnumpy() for p, g in zip(params, grads)}
    names = {k: deen_name(v, network.num_stages) for k, v in _ms_names(state).items()}
    theirs = {names[n]: norm for n, norm in zip(golden["grad_names"], golden["grad_norms"])}
    assert set(theirs) == set(ours)  # every trainable parameter has the authors' gradient
    # (a bias before a BatchNorm has none in exact arithmetic: its float noise is not compared)
    errors = [
        abs(np.linalg.norm(ours[name]) - norm) / norm
        for name, norm in theirs.items()
        if norm > 1e-6
    ]
    # float32 against the float64 goldens: torch's own float32 gradients differ from them by a
    # median of 1-2e-4 and at most 0.3 %; MindSpore's kernels measured 2-6e-4 and at most 1.3 %
    # (the MFA projections, where unnormalised attention products cancel).
    assert len(errors) > 150 and np.median(errors) < 1e-3
    assert max(errors) < 0.03, max(errors)
    for key in [k for k in golden if k.startswith("grad/")]:
        theirs = golden[key]
        mine = ours[names[key[len("grad/") :]]]
        assert np.linalg.norm(mine - theirs) < 0.03 * np.linalg.norm(theirs), key


def _ms_names(state):
    """{PyTorch name: MindSpore name} of a whole state dict (norms are told by their stats)."""
    renamed = torch_to_mindspore_names(state)
    ours = {id(value): name for name, value in renamed.items()}
    return {name: ours[id(value)] for name, value in state.items() if id(value) in ours}
