"""The trainer knows no DDAG: a toy objective trains through it, with its own step inputs and
its state checkpointed through the TrainState."""

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ddag.engine.step import make_train_step
from ddag.engine.trainer import Callback, Trainer, TrainState


class ToyObjective(nn.Cell):
    """Least squares y = x w, with a per-step input (a loss scale) and a counter as state."""

    term_names = ("squared_error",)

    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.zeros((3, 1), np.float32)), name="w")
        self.steps_seen = 0

    def construct(self, x, y, scale):
        loss = ((ops.matmul(x, self.w) - y) ** 2).mean() * scale
        return loss, (loss,)

    def step_inputs(self, step: int):
        return (Tensor(1.0, ms.float32),)

    def step_end(self, values) -> None:
        self.steps_seen += 1

    def epoch_end(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"steps_seen": self.steps_seen}

    def load_state_dict(self, state: dict) -> None:
        self.steps_seen = state["steps_seen"]


class NoSampler:
    batch_size = 4

    def set_epoch(self, epoch: int) -> None:
        pass


class Losses(Callback):
    def __init__(self):
        self.values = []

    def on_step_end(self, trainer, state, losses):
        self.values.append(losses["squared_error"])


def _trainer(objective, epochs, callbacks):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    pipeline = ds.NumpySlicesDataset((x, y), column_names=["x", "y"], shuffle=False).batch(4)
    optimizer = nn.SGD(objective.trainable_params(), learning_rate=0.1)
    step = make_train_step(objective, optimizer, jit=True)
    return Trainer(
        step, objective, pipeline, NoSampler(), epochs, np.full(99, 0.1), callbacks, 4, 4
    )


def test_a_toy_objective_trains_and_its_state_is_checkpointed():
    objective, losses = ToyObjective(), Losses()
    state = _trainer(objective, 3, [losses]).fit(TrainState())
    assert (state.epoch, state.step) == (3, 12)
    assert len(losses.values) == 12  # callbacks see the objective's own term names
    first, last = (state.epoch_losses[i]["squared_error"] for i in (0, -1))
    assert last < 0.2 * first, state.epoch_losses
    assert state.components["objective"] == {"steps_seen": 12}

    # Resumed from the saved state, the objective gets its state back and carries on counting.
    resumed = TrainState.from_meta(state.to_meta())
    again = ToyObjective()
    state = _trainer(again, 4, []).fit(resumed)
    assert state.step == 16 and again.steps_seen == 16
