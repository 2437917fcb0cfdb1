"""PMT's loss terms equal the authors' (hulu88/PMT loss/ and train.py) on fixed features;
golden made by tests/data/goldens/make_pmt_losses.py with torch in float64."""

import mindspore as ms
import numpy as np
import pytest

from ddag.losses.pmt import (
    DiscriminativeCenterLoss,
    IntraModalityTriplet,
    ModalityEnhancementLoss,
    PerModalityCrossEntropy,
)
from ddag.losses.terms import BatchHardTriplet
from tests.conftest import DATA

ms.set_context(mode=ms.PYNATIVE_MODE)
GOLDEN = dict(np.load(DATA / "golden_pmt_losses.npz"))
FEATURES = ms.Tensor(GOLDEN["features"].astype(np.float32))
LABELS = ms.Tensor(GOLDEN["labels"].astype(np.int32))

CASES = {
    "dcl": (DiscriminativeCenterLoss("pool", num_instances=4), FEATURES),
    "msel": (ModalityEnhancementLoss("pool", num_instances=4), FEATURES),
    "triplet": (BatchHardTriplet("pool", margin=0.1), FEATURES),
    "triplet_intra": (IntraModalityTriplet("pool", margin=0.1), FEATURES),
    "id": (PerModalityCrossEntropy("logits"), ms.Tensor(GOLDEN["logits"].astype(np.float32))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_pmt_term_equals_the_authors(name):
    term, inputs = CASES[name]
    value = float(term(inputs, LABELS).asnumpy())
    assert value == pytest.approx(float(GOLDEN[name]), rel=1e-5), name


def test_the_terms_have_gradients_and_refuse_two_visible_views():
    from ddag.errors import ConfigError
    from ddag.losses.objective import Objective
    from ddag.models.backbones.resnet import ResNet
    from ddag.models.ddag import DDAG

    ms.set_context(mode=ms.PYNATIVE_MODE)  # another file of this worker may have set graph mode

    def both(features):
        return CASES["dcl"][0](features, LABELS) + CASES["msel"][0](features, LABELS)

    grad = ms.grad(both)(FEATURES)
    assert np.all(np.isfinite(grad.asnumpy())) and np.abs(grad.asnumpy()).sum() > 0
    network = DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8), 4)
    with pytest.raises(ConfigError, match="equal visible and thermal halves"):
        Objective(network, {"dcl": CASES["dcl"][0]}, batch_pairs=4, visible_views=2)
