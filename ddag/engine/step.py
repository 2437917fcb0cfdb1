"""The train step: MindSpore 2.x functional style (`value_and_grad` + optional `jit`)."""

import numpy as np
from mindspore import amp, ops, value_and_grad
from mindspore import jit as ms_jit


def make_train_step(objective, optimizer, grad_reducer=None, jit: bool = True, loss_scaler=None):
    """Build `step(*inputs)`: `objective(*inputs) -> (total, terms)`, then the update.

    The inputs are the batch followed by the objective's per-step inputs (for DDAG: the graph
    weight and the dropout noise drawn on the host); the step returns `(total, terms)` after
    applying the optimiser. `grad_reducer` averages gradients across data-parallel ranks. With
    a `loss_scaler` (mixed precision) the loss is scaled before differentiation, gradients are
    unscaled, and a step whose gradients overflowed is skipped while the scaler lowers its scale.
    """

    def forward(*inputs):
        total, terms = objective(*inputs)
        if loss_scaler is not None:
            total = loss_scaler.scale(total)
        return total, terms

    grad_fn = value_and_grad(forward, None, optimizer.parameters, has_aux=True)

    def train_step(*inputs):
        (total, terms), grads = grad_fn(*inputs)
        if grad_reducer is not None:
            grads = grad_reducer(grads)
        if loss_scaler is None:
            # A non-finite gradient makes the returned loss NaN, so the host stops at this step
            # even when the loss itself was still finite.
            poison = ops.select(amp.all_finite(grads), ops.zeros_like(total), total * np.nan)
            return ops.depend(total, optimizer(grads)) + poison, terms
        grads = loss_scaler.unscale(grads)
        finite = amp.all_finite(grads)
        loss_scaler.adjust(finite)
        if finite:
            total = ops.depend(total, optimizer(grads))
        return loss_scaler.unscale(total), terms

    return ms_jit(train_step) if jit else train_step
