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
    groups = parameter_groups(net, lr, 0.1, 5e-4)
    ours = GroupSGD(groups, momentum=0.9, nesterov=True)
    theirs = nn.SGD(
        parameter_groups(net, lr, 0.1, 5e-4),
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
        GroupSGD(parameter_groups(TwoGroups(), np.ones(2, np.float32), 1.0, 0.0), 0.0, True)
