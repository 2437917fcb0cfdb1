"""The SGD recipe against PyTorch's update rule, written out in numpy."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from ddag.engine.optim import SGD, GroupSGD, parameter_groups


class TwoGroups(nn.Cell):
    """A "trunk." parameter group (the backbone) and a head group."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Dense(3, 4)
        self.head = nn.Dense(4, 2)


def torch_sgd(params, grads_per_step, rates_per_step, momentum, nesterov, weight_decay):
    """torch.optim.SGD (dampening 0) for a list of arrays; `rates_per_step[t][i]` is the rate of
    parameter i at step t."""
    params = [p.copy() for p in params]
    bufs = [None] * len(params)
    for grads, rates in zip(grads_per_step, rates_per_step):
        for i, (p, g, lr) in enumerate(zip(params, grads, rates)):
            g = g + weight_decay * p
            bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + g
            step = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = p - lr * step
    return params


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("compiled", [False, True])
def test_group_sgd_is_pytorch_sgd_with_per_step_group_rates(nesterov, compiled):
    net = TwoGroups()
    lr_factors = np.array([1.0, 0.5, 2.0], np.float32)
    recipe = SGD(lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01, backbone_lr_scale=0.1)
    optimizer = recipe.build(net, lr_factors)
    start = [p.asnumpy().copy() for p in optimizer.parameters]
    backbone = [p.name.startswith("trunk.") for p in optimizer.parameters]
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in start] for _ in range(3)]

    def update(gradients):
        return optimizer(gradients)

    step = ms.jit(update) if compiled else update
    for step_grads in grads:
        step(ms.mutable(tuple(Tensor(g) for g in step_grads)))

    rates = [[0.1 * f * (0.1 if b else 1.0) for b in backbone] for f in lr_factors]
    expected = torch_sgd(start, grads, rates, 0.9, nesterov, 0.01)
    for param, want in zip(optimizer.parameters, expected):
        np.testing.assert_allclose(param.asnumpy(), want, rtol=1e-5, atol=1e-6, err_msg=param.name)
    assert optimizer.global_step.asnumpy().tolist() == [3]


def test_group_sgd_state_has_nn_sgd_names_so_old_checkpoints_resume():
    net = TwoGroups()
    lr = np.array([0.1, 0.2], np.float32)
    groups = parameter_groups(net, lr, 1.0, 0.1, 5e-4)
    ours = GroupSGD(groups, momentum=0.9, nesterov=True)
    theirs = nn.SGD(
        parameter_groups(net, lr, 1.0, 0.1, 5e-4),
        learning_rate=Tensor(lr),
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
    )
    shapes = {p.name: tuple(p.shape) for p in ours.get_parameters()}
    assert shapes == {p.name: tuple(p.shape) for p in theirs.get_parameters()}
    assert {"global_step", "momentum", "learning_rate_group_1", "accum.trunk.weight"} <= set(shapes)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="momentum > 0"):
        GroupSGD(parameter_groups(TwoGroups(), np.ones(2, np.float32), 1.0, 1.0, 0.0), 0.0, True)


def test_adamw_and_warmup_cosine_equal_pmt_optimizer_and_scheduler():
    """PMT's make_optimizer + create_scheduler (tests/data/goldens/make_pmt_optimizer.py, run
    under torch): the same rates per group and epoch, the same parameters after 12 steps."""
    from pathlib import Path

    from mindspore import Parameter

    from ddag.engine.optim import AdamW
    from ddag.engine.schedules import WarmupCosine, schedule_rates
    from tests.conftest import CONF

    golden = np.load(Path(__file__).parent / "data" / "golden_pmt_optimizer.npz")
    names = {  # PMT's name -> ddag's
        "base.patch_embed.proj.weight": "shared_stem.patch_embed.proj.weight",
        "base.blocks.0.fc.weight": "trunk.blocks.0.fc.weight",
        "base.blocks.0.fc.bias": "trunk.blocks.0.fc.bias",
        "base.cls_token": "shared_stem.cls_token",
        "classifier.weight": "classifier.weight",
    }
    params = [Parameter(Tensor(golden[f"start/{n}"]), name=m) for n, m in names.items()]

    class Network:
        def trainable_params(self):
            return params

    import yaml

    node = yaml.safe_load((CONF / "optimizer" / "adamw_pmt.yaml").read_text())
    node.pop("_target_")
    epochs, steps = golden["rates"].shape[0], golden["grads"].shape[1]
    rates = schedule_rates(WarmupCosine(3, 0.01, 0.01, None), epochs, steps)
    optimizer = AdamW(**node).build(Network(), rates)
    per_param = {p.name: i for i, p in enumerate(optimizer.parameters)}

    def update(gradients):
        return optimizer(gradients)

    step = ms.jit(update)
    flat = golden["grads"].reshape(epochs * steps, -1)
    for row in flat:
        grads, offset = {}, 0
        for p in params:  # the golden's order; the optimiser's is group by group
            size = int(np.prod(p.shape))
            grads[p.name] = Tensor(row[offset : offset + size].reshape(p.shape))
            offset += size
        step(ms.mutable(tuple(grads[p.name] for p in optimizer.parameters)))
    tables = [lr.asnumpy()[::steps] for lr in optimizer.learning_rates]
    group_of = optimizer.group_of
    for column, param in enumerate(params):
        group = group_of[per_param[param.name]]
        np.testing.assert_allclose(
            tables[group], golden["rates"][:, column], rtol=1e-6, err_msg=param.name
        )
    for (pmt_name, _), param in zip(names.items(), params):
        np.testing.assert_allclose(
            param.asnumpy(), golden[f"end/{pmt_name}"], rtol=1e-5, atol=1e-7, err_msg=param.name
        )
