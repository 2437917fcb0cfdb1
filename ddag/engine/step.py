"""The train step: MindSpore 2.x functional style (`value_and_grad` + optional `jit`)."""

from mindspore import jit as ms_jit
from mindspore import ops, value_and_grad


def make_train_step(objective, optimizer, grad_reducer=None, jit: bool = True):
    """Build `step(visible, thermal, visible_labels, thermal_labels, graph_weight, noise)`.

    The step returns `(total, terms)` after applying the optimiser. `noise` is the flat uniform
    dropout noise of the step (see `Objective.noise_size`), drawn on the host.

    `graph_weight` must be a 0-d float32 Tensor: a Python float would be folded into the compiled
    graph as a constant and force a recompilation every time it changes.
    """

    def forward(visible, thermal, visible_labels, thermal_labels, graph_weight, noise):
        return objective(visible, thermal, visible_labels, thermal_labels, graph_weight, noise)

    grad_fn = value_and_grad(forward, None, optimizer.parameters, has_aux=True)

    def train_step(visible, thermal, visible_labels, thermal_labels, graph_weight, noise):
        (total, terms), grads = grad_fn(
            visible, thermal, visible_labels, thermal_labels, graph_weight, noise
        )
        if grad_reducer is not None:
            grads = grad_reducer(grads)
        total = ops.depend(total, optimizer(grads))
        return total, terms

    return ms_jit(train_step) if jit else train_step
