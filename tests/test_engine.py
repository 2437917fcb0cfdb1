"""The trainer knows no DDAG: a toy objective trains through it, with its own step inputs and
its state checkpointed through the TrainState."""

import json

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

    state_key = "objective"

    def construct(self, x, y, scale):
        loss = ((ops.matmul(x, self.w) - y) ** 2).mean() * scale
        return loss, (loss,)

    def step_inputs(self, step: int, epoch: int):
        return (Tensor(1.0, ms.float32),)

    def step_end(self, values) -> None:
        self.steps_seen += 1

    def epoch_end(self) -> None:
        pass

    def scalars(self) -> dict:
        return {}

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


class EpochCounter(Callback):
    """A stateful callback that changes its state at epoch end, after the objective's."""

    state_key = "EpochCounter"

    def __init__(self):
        self.epochs_seen = 0

    def on_epoch_end(self, trainer, state):
        self.epochs_seen += 1

    def state_dict(self) -> dict:
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state: dict) -> None:
        self.epochs_seen = state["epochs_seen"]


class MetaSaver(Callback):
    """Records the checkpoint metadata a saver would write, the way CheckpointSaver does."""

    def __init__(self):
        self.written = []

    def on_epoch_end(self, trainer, state):
        trainer.record_components(state)
        self.written.append(json.loads(json.dumps(state.to_meta())))  # as written to disk


def test_callback_state_is_checkpointed_as_it_is_when_the_checkpoint_is_written():
    counter, saver = EpochCounter(), MetaSaver()
    _trainer(ToyObjective(), 2, [counter, saver]).fit(TrainState())
    # The counter updated after the epoch's end; the saver, called after it, still has it.
    assert [m["components"]["EpochCounter"] for m in saver.written] == [
        {"epochs_seen": 1},
        {"epochs_seen": 2},
    ]
    resumed_counter = EpochCounter()
    state = TrainState.from_meta(saver.written[0])
    _trainer(ToyObjective(), 3, [resumed_counter]).fit(state)
    assert resumed_counter.epochs_seen == 3  # 1 restored + epochs 2 and 3


def test_old_checkpoints_keep_their_model_selection_state():
    meta = {
        "epoch": 2,
        "step": 8,
        "best_metric": 0.5,
        "best_epoch": 1,
        "selection_history": [{"epoch": 1, "rank1": 0.5}, {"epoch": 2, "rank1": 0.25}],
        "graph_weight": 0.4,
    }
    state = TrainState.from_meta(meta)
    assert state.components["selection"] == {
        "best_metric": 0.5,
        "best_epoch": 1,
        "history": meta["selection_history"],
    }
    assert state.components["objective"] == {"graph_weight": 0.4}


def test_a_non_finite_gradient_makes_the_step_loss_nan_before_any_save():
    import mindspore as ms
    from mindspore import nn

    from ddag.engine.step import make_train_step

    class Objective(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="w")

        def construct(self, x):
            total = (self.w * x).sum()  # d/dw = x: inf where x is inf
            return ms.ops.minimum(total, ms.Tensor(1.0)), (total,)

    objective = Objective()
    optimizer = nn.SGD(objective.trainable_params(), learning_rate=0.1)
    step = make_train_step(objective, optimizer, jit=False)
    total, _ = step(ms.Tensor(np.array([1.0, 2.0], np.float32)))
    assert np.isfinite(total.asnumpy())
    total, _ = step(ms.Tensor(np.array([1.0, np.inf], np.float32)))
    assert np.isnan(total.asnumpy())  # the loss was clipped to 1.0; the gradient was inf


class _FakeTrainer:
    epochs, steps_per_epoch, images_per_step = 2, 4, 16

    def lr_at(self, step):
        return 0.1

    def scalars(self):
        return {}


def test_progress_lines_time_the_compilation_apart_and_give_an_eta(caplog, monkeypatch):
    import logging
    import types

    from ddag.engine import callbacks
    from ddag.engine.callbacks import ProgressLogger, duration

    assert [duration(s) for s in (5, 185, 3720)] == ["5s", "3m05s", "1h02m"]
    clock = iter([0.0, 30.0, 32.0, 34.0, 36.0, 38.0, 40.0, 42.0, 44.0, 46.0, 48.0])
    fake_time = types.SimpleNamespace(perf_counter=lambda: next(clock))
    monkeypatch.setattr(callbacks, "time", fake_time)  # the throughput timer keeps real time
    trainer, state, progress = _FakeTrainer(), TrainState(), ProgressLogger(2, compiles=True)
    with caplog.at_level(logging.INFO, logger="ddag.engine.callbacks"):
        progress.on_train_start(trainer, state)
        for _ in range(4):
            state.step += 1
            progress.on_step_end(trainer, state, {"total": 1.0})
    text = caplog.text
    assert "compiling the train step first" in text
    assert "train step compiled and run once in 30.0 s" in text
    # Steps 2-4 took 2 s each: after step 4, 4 steps are left in the run and 0 in the epoch.
    assert "estimated training time: 8s (4 steps at 2.00 s/step" in text
    assert "step 4/4" in text and "ETA epoch 0s, run 8s" in text
