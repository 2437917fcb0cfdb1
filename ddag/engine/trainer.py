"""The epoch loop: batches -> compiled step -> callbacks, for any objective.

The trainer knows nothing of DDAG: the objective fulfils `ObjectiveContract` (names its loss
terms, supplies the step's extra inputs, hears each step's losses and each epoch's end, reports
scalars to log and keeps its own state). That state, and that of every callback that declares a
`state_key`, is checkpointed with the TrainState under that declared name.
"""

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from ddag.data.loader import source_errors
from ddag.errors import TrainingError

# Component states of checkpoints written before components declared their names.
OLD_COMPONENT_NAMES = {"PeriodicEvaluation": "selection"}


class ObjectiveContract(Protocol):
    """What the trainer asks of an objective (a MindSpore Cell computing the losses)."""

    term_names: Sequence[str]
    state_key: str  # the objective's name in TrainState.components

    def step_inputs(self, step: int, epoch: int) -> Tuple:
        """Extra inputs of the compiled step after the batch's columns (step and epoch
        0-based)."""

    def step_end(self, values: np.ndarray) -> None:
        """The step's [total, *terms] loss values, as floats."""

    def epoch_end(self) -> None: ...

    def scalars(self) -> Dict[str, float]:
        """Values logged beside the losses (DDAG: the graph weight)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainState:
    """Everything that changes during training and must survive a resume.

    Attributes:
        epoch: number of completed epochs (the next epoch to run).
        step: number of completed optimiser steps.
        components: state of the stateful parts (the objective, callbacks such as the model
            selection) by name, as their `state_dict()` gave it at the last checkpoint.
        last_checkpoint: path of the newest complete checkpoint, if any.
        epoch_losses: mean of every loss term per finished epoch.
    """

    epoch: int = 0
    step: int = 0
    components: Dict[str, dict] = field(default_factory=dict)
    last_checkpoint: Optional[str] = None
    epoch_losses: List[Dict[str, float]] = field(default_factory=list)

    def to_meta(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "components": self.components,
            "epoch_losses": self.epoch_losses,
        }

    @classmethod
    def from_meta(cls, meta: dict) -> "TrainState":
        state = cls(epoch=int(meta["epoch"]), step=int(meta["step"]))
        state.components = dict(meta.get("components") or {})
        state.epoch_losses = list(meta.get("epoch_losses", []))
        # Checkpoints written before the objective and the selection kept their own state.
        if "graph_weight" in meta:
            state.components.setdefault("objective", {"graph_weight": meta["graph_weight"]})
        for old, new in OLD_COMPONENT_NAMES.items():
            if old in state.components:
                state.components.setdefault(new, state.components.pop(old))
        if "selection_history" in meta:
            state.components.setdefault(
                "selection",
                {
                    "best_metric": meta.get("best_metric"),
                    "best_epoch": int(meta.get("best_epoch", -1)),
                    "history": list(meta["selection_history"]),
                },
            )
        return state


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived during training; the loop stopped between two steps.

    MindSpore's runtime keeps a C-level SIGINT handler of its own that turns Ctrl-C into a
    SIGTERM to the process, so the two cannot be told apart here: both mean "stop".
    """


class StopSignals:
    """While installed, SIGINT and SIGTERM only record their number in `received`.

    Outside the main thread, where Python cannot set handlers, nothing is installed.
    """

    NUMBERS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: List[int] = []
        self._previous = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in self.NUMBERS:
            previous = signal.signal(number, self._record)
            self._previous.setdefault(number, previous)

    def _record(self, signum, frame) -> None:
        self.received.append(signum)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class Callback:
    """Hook points of the loop; override what you need.

    A callback with state to checkpoint sets `state_key` (its name in TrainState.components)
    and overrides `state_dict` / `load_state_dict`.
    """

    state_key: Optional[str] = None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...

    def on_train_start(self, trainer: "Trainer", state: TrainState) -> None: ...

    def on_step_end(
        self, trainer: "Trainer", state: TrainState, losses: Dict[str, float]
    ) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", state: TrainState) -> None: ...

    def on_train_end(self, trainer: "Trainer", state: TrainState) -> None: ...


class Trainer:
    """Runs `step_fn` over `pipeline` for `epochs` epochs.

    Args:
        step_fn: `(*batch, *objective.step_inputs(step, epoch)) -> (total, terms)`, applying
            the update.
        objective: names its terms (`term_names`), is put in train mode, supplies per-step
            inputs and keeps its own state (see the module docstring).
        pipeline: a MindSpore dataset of training batches.
        sampler: the sampler feeding the pipeline; `set_epoch` re-positions it on resume.
        epochs: total number of epochs.
        lr_per_step: learning rate of the head group at every step (for logging).
        callbacks: hooks called in order.
        steps_per_epoch: steps taken per epoch, at most the sampler's batches per epoch
            (fewer cuts epochs short, as smoke runs do).
        images_per_step: images one step consumes (for throughput lines).
    """

    def __init__(
        self,
        step_fn,
        objective,
        pipeline,
        sampler,
        epochs: int,
        lr_per_step: np.ndarray,
        callbacks: List[Callback],
        steps_per_epoch: int,
        images_per_step: int,
    ):
        self.step_fn, self.objective = step_fn, objective
        self.pipeline, self.sampler = pipeline, sampler
        self.epochs, self.lr_per_step, self.callbacks = epochs, lr_per_step, callbacks
        self.steps_per_epoch = steps_per_epoch
        self.images_per_step = images_per_step
        self.term_names = ("total",) + tuple(objective.term_names)
        self._stateful = {objective.state_key: objective}
        self._stateful.update({cb.state_key: cb for cb in callbacks if cb.state_key})

    def lr_at(self, step: int) -> float:
        return float(self.lr_per_step[min(step, len(self.lr_per_step) - 1)])

    def scalars(self) -> Dict[str, float]:
        """Values the objective wants logged beside the losses (DDAG: the graph weight)."""
        return dict(self.objective.scalars())

    def _restore_components(self, state: TrainState) -> None:
        for name, part in self._stateful.items():
            if name in state.components:
                part.load_state_dict(state.components[name])

    def record_components(self, state: TrainState) -> None:
        """Copy every stateful part's `state_dict()` into `state`; savers call this right
        before writing, so a checkpoint holds what its callbacks knew at that moment."""
        for name, part in self._stateful.items():
            state.components[name] = part.state_dict()

    def fit(self, state: TrainState) -> TrainState:
        """Train from `state` to `self.epochs`; returns the final state.

        SIGINT (Ctrl-C) and SIGTERM stop the loop after the current step with StopRequested;
        `state` then still describes the last finished epoch's checkpoint.
        """
        self._signals = StopSignals()
        self._restore_components(state)
        for cb in self.callbacks:
            cb.on_train_start(self, state)
        if state.epoch < self.epochs:
            self.sampler.set_epoch(state.epoch)
            iterator = self.pipeline.create_tuple_iterator(num_epochs=self.epochs - state.epoch)
            self._signals.install()
            try:
                for epoch in range(state.epoch, self.epochs):
                    with source_errors(self.pipeline):
                        self._run_epoch(iterator, epoch, state)
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, state)
                    self._stop_if_requested()
            except RuntimeError:
                self._stop_if_requested()  # a pipeline torn down by the signal: still a stop
                raise
            finally:
                self._signals.restore()
        for cb in self.callbacks:
            cb.on_train_end(self, state)
        return state

    def _run_epoch(self, iterator, epoch: int, state: TrainState) -> None:
        self.objective.set_train(True)
        sums, count = np.zeros(len(self.term_names)), 0
        for index, batch in enumerate(iterator):
            if index >= self.steps_per_epoch:
                continue  # drain the rest of a shortened epoch so the next starts cleanly
            total, terms = self.step_fn(*batch, *self.objective.step_inputs(state.step, epoch))
            values = np.array([float(total.asnumpy())] + [float(t.asnumpy()) for t in terms])
            self._check_finite(values, epoch, state)
            self.objective.step_end(values)
            state.step += 1
            sums, count = sums + values, count + 1
            losses = dict(zip(self.term_names, values.tolist()))
            for cb in self.callbacks:
                cb.on_step_end(self, state, losses)
            self._stop_if_requested()
        self._check_parameters(epoch, state)
        state.epoch = epoch + 1
        state.epoch_losses.append(dict(zip(self.term_names, (sums / max(count, 1)).tolist())))
        self.objective.epoch_end()
        self.record_components(state)

    def _stop_if_requested(self) -> None:
        if self._signals.received:
            raise StopRequested("SIGINT or SIGTERM")

    def _check_finite(self, values: np.ndarray, epoch: int, state: TrainState) -> None:
        if np.all(np.isfinite(values)):
            return
        terms = dict(zip(self.term_names, values.round(4).tolist()))
        what = "the loss" if not np.all(np.isfinite(values[1:])) else "the loss or its gradient"
        raise TrainingError(
            f"{what} became non-finite during epoch {epoch + 1}/{self.epochs}, at step "
            f"{state.step} (loss terms {terms}, "
            f"learning rate {self.lr_at(state.step):.3g}). {self._divergence_hint(state)}"
        )

    def _check_parameters(self, epoch: int, state: TrainState) -> None:
        """Before anything is saved: a parameter or statistic (BatchNorm's running variance)
        that went non-finite while the losses stayed finite would give NaN features later."""
        for parameter in self.objective.get_parameters():
            if not np.all(np.isfinite(parameter.asnumpy())):
                raise TrainingError(
                    f"{parameter.name} became non-finite during epoch {epoch + 1}/{self.epochs} "
                    "(the losses were "
                    f"finite; last step {state.step}). {self._divergence_hint(state)}"
                )

    @staticmethod
    def _divergence_hint(state: TrainState) -> str:
        checkpoint = state.last_checkpoint or "not written yet"
        return (
            f"Training stopped; the last good checkpoint is {checkpoint}. Try a lower "
            "optimizer.lr, an input size the backbone is meant for (loader=paper: 288x144 for "
            "ResNet-50), or runtime.amp_level=O0, then continue with task.resume=<checkpoint> "
            "or start again"
        )


class StepTimer:
    """Images per second over the steps since the last `rate()` call."""

    def __init__(self):
        self._start, self._images = time.perf_counter(), 0

    def add(self, images: int) -> None:
        self._images += images

    def rate_text(self) -> str:
        """`  123.4 img/s` over the steps since the last call; empty when none were added."""
        return f"  {self.rate():.1f} img/s" if self._images else ""

    def rate(self) -> float:
        now = time.perf_counter()
        value = self._images / max(now - self._start, 1e-9)
        self._start, self._images = now, 0
        return value
