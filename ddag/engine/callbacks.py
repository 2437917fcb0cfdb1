"""Callbacks of the training loop: progress, TensorBoard, checkpoints, periodic evaluation."""

import math
import time
from collections import deque
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional

import numpy as np

from ddag.checkpoints.format import save_checkpoint
from ddag.checkpoints.meta import CheckpointMeta
from ddag.engine.trainer import Callback, StepTimer
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def duration(seconds: float) -> str:
    """`1h02m`, `3m05s`, `12s`."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressLogger(Callback):
    """A log line every `every_n_steps` steps and at each epoch end: losses, lr, the objective's
    scalars (DDAG: the graph weight), images/s and the time left in the epoch and the run.

    The first step of a compiled train step includes its compilation: it is timed and reported
    on its own line, and left out of the throughput and the estimates. One line per interval,
    so log files stay readable (no carriage-return bars).
    """

    def __init__(self, every_n_steps: int = 10, compiles: bool = False):
        self.every_n_steps = max(1, every_n_steps)
        self.compiles = compiles
        self.timer = StepTimer()
        self._step_seconds: Deque[float] = deque(maxlen=50)  # recent steps, for the estimates
        self._last = None
        self._estimated = False

    def on_train_start(self, trainer, state):
        log.info(
            "training %d epochs x %d steps, %d images per step%s",
            trainer.epochs,
            trainer.steps_per_epoch,
            trainer.images_per_step,
            "; compiling the train step first..." if self.compiles else "",
        )
        self.timer = StepTimer()
        self._last, self._first = time.perf_counter(), True

    def _time_step(self) -> bool:
        """Record the step's time; True for the step that compiled the train step."""
        now = time.perf_counter()
        if self._last is None:  # the first step after an epoch's evaluation and checkpoint
            self._last = now
            return False
        seconds, self._last = now - self._last, now
        compiled, self._first = self._first and self.compiles, False
        if compiled:
            log.info("train step compiled and run once in %.1f s", seconds)
        else:
            self._step_seconds.append(seconds)
        return compiled

    def _seconds_per_step(self) -> float:
        return sum(self._step_seconds) / len(self._step_seconds)

    def _eta(self, trainer, state, in_epoch: int) -> str:
        if not self._step_seconds:
            return ""
        per_step = self._seconds_per_step()
        left_total = trainer.epochs * trainer.steps_per_epoch - state.step
        left_epoch = trainer.steps_per_epoch - in_epoch
        return (
            f"  ETA epoch {duration(left_epoch * per_step)}, run {duration(left_total * per_step)}"
        )

    def on_step_end(self, trainer, state, losses):
        if self._time_step():
            self.timer = StepTimer()  # throughput from the first compiled step on
        else:
            self.timer.add(trainer.images_per_step)
        in_epoch = (state.step - 1) % trainer.steps_per_epoch + 1
        if not self._estimated and len(self._step_seconds) >= min(3, trainer.steps_per_epoch):
            self._estimated = True
            per_step = self._seconds_per_step()
            total = trainer.epochs * trainer.steps_per_epoch
            log.info(
                "estimated training time: %s (%d steps at %.2f s/step; evaluation not included)",
                duration((total - state.step) * per_step),
                total - state.step,
                per_step,
            )
        if in_epoch % self.every_n_steps == 0 or in_epoch == trainer.steps_per_epoch:
            terms = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
            scalars = "".join(f"  {k}={v:.3f}" for k, v in trainer.scalars().items())
            log.info(  # epochs are counted from 1 in every line (state.epoch: epochs finished)
                "epoch %d/%d step %d/%d  %s  lr=%.2e%s%s%s",
                state.epoch + 1,
                trainer.epochs,
                in_epoch,
                trainer.steps_per_epoch,
                terms,
                trainer.lr_at(state.step - 1),
                scalars,
                self.timer.rate_text(),
                self._eta(trainer, state, in_epoch),
            )

    def on_epoch_end(self, trainer, state):
        self.timer = StepTimer()  # evaluation and checkpointing are not training throughput
        self._last = None

    def on_train_end(self, trainer, state):
        self._last = None


class TensorBoardLogger(Callback):
    """TensorBoard scalars via tensorboardX: loss terms, lr and graph weight per step, metrics."""

    def __init__(self, log_dir: str, flush_secs: int = 30):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(log_dir), flush_secs=flush_secs)

    def on_step_end(self, trainer, state, losses):
        for name, value in losses.items():
            self.writer.add_scalar(f"loss/{name}", value, state.step)
        self.writer.add_scalar("train/lr", trainer.lr_at(state.step - 1), state.step)
        for name, value in trainer.scalars().items():
            self.writer.add_scalar(f"train/{name}", value, state.step)

    def log_metrics(self, prefix: str, metrics: dict, step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)
        self.writer.flush()

    def log_image(self, tag: str, image, step: int) -> None:
        """An (H, W, 3) uint8 image."""
        self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def log_embedding(self, tag: str, features, labels, thumbnails, step: int) -> None:
        """Features for TensorBoard's projector: (N, D) rows, N text labels and N square
        (S, S, 3) uint8 thumbnails (its sprite)."""
        images = np.asarray(thumbnails, np.float32).transpose(0, 3, 1, 2) / 255.0
        self.writer.add_embedding(
            np.asarray(features, np.float32),
            metadata=list(labels),
            label_img=images,
            global_step=step,
            tag=tag,
        )
        self.writer.flush()

    def log_hparams(self, hparams: dict, metrics: dict) -> None:
        """One row of TensorBoard's HParams dashboard: a run's settings and final metrics.

        Point TensorBoard at a sweep folder to compare every job of the sweep in one view.
        """
        if not hparams:
            hparams = {"run": "defaults"}
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        self.writer.add_hparams(
            hparams, {f"hparam/{k}": v for k, v in numbers.items()}, name="hparams"
        )
        self.writer.flush()

    def on_train_end(self, trainer, state):
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class CheckpointSaver(Callback):
    """Writes `last.ckpt` (network, optimiser, loop state) every `every_n_epochs` and at the end."""

    def __init__(
        self,
        directory: str,
        network,
        optimizer,
        meta: Optional[CheckpointMeta] = None,
        every_n_epochs: int = 1,
    ):
        self.directory = Path(directory)
        self.network, self.optimizer = network, optimizer
        self.meta = meta or CheckpointMeta()
        self.every_n_epochs = max(1, every_n_epochs)

    def save(self, trainer, state, name: str, with_optimizer: bool = True) -> Path:
        """Write `name` with the network, the loop state as it is now and, unless told
        otherwise, the optimiser (best.ckpt holds the network only: it is for inference, and
        the optimiser state would double its size)."""
        trainer.record_components(state)
        path = save_checkpoint(
            self.directory / name,
            self.network,
            self.optimizer if with_optimizer else None,
            self.meta.with_state(state.to_meta()),
        )
        return path

    def on_epoch_end(self, trainer, state):
        if state.epoch % self.every_n_epochs == 0 or state.epoch == trainer.epochs:
            state.last_checkpoint = str(self.save(trainer, state, "last.ckpt"))
            log.info(
                "saved %s (after epoch %d/%d, step %d)",
                state.last_checkpoint,
                state.epoch,
                trainer.epochs,
                state.step,
            )


class PeriodicEvaluation(Callback):
    """Every `every_n_epochs`, score the model with `evaluate_fn` and keep the best as best.ckpt.

    Its scores, best metric and best epoch are its own state (`state_dict`), checkpointed with
    the TrainState's components whenever a checkpoint is written; put this callback before the
    CheckpointSaver so last.ckpt records the fresh scores.

    Args:
        evaluate_fn: `() -> dict` of metrics (fractions) on the selection split.
        metric: key of the metric to maximise (e.g. "rank1").
        saver: writes best.ckpt when the metric improves.
        tensorboard: optional logger for the metrics.
        prefix: TensorBoard tag prefix ("val" or "test").
    """

    state_key = "selection"

    def __init__(
        self,
        evaluate_fn: Callable[[], dict],
        every_n_epochs: int,
        metric: str,
        saver: Optional[CheckpointSaver],
        tensorboard: Optional[TensorBoardLogger] = None,
        prefix: str = "val",
    ):
        self.evaluate_fn, self.every_n_epochs, self.metric = (
            evaluate_fn,
            max(1, every_n_epochs),
            metric,
        )
        self.saver, self.tensorboard, self.prefix = saver, tensorboard, prefix
        self.best_metric, self.best_epoch = -math.inf, -1
        self.history: List[Dict[str, float]] = []

    def state_dict(self) -> dict:
        best = self.best_metric if math.isfinite(self.best_metric) else None
        return {"best_metric": best, "best_epoch": self.best_epoch, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        best = state.get("best_metric")
        self.best_metric = -math.inf if best is None else float(best)
        self.best_epoch = int(state.get("best_epoch", -1))
        self.history = list(state.get("history", []))

    def on_epoch_end(self, trainer, state):
        if state.epoch % self.every_n_epochs and state.epoch != trainer.epochs:
            return
        metrics = self.evaluate_fn()
        self.history.append({"epoch": state.epoch, **metrics})
        log.info(
            "%s after epoch %d/%d: %s",
            self.prefix,
            state.epoch,
            trainer.epochs,
            "  ".join(f"{k}={100 * v:.2f}" for k, v in metrics.items()),
        )
        if self.tensorboard is not None:
            self.tensorboard.log_metrics(self.prefix, metrics, state.step)
        if metrics[self.metric] > self.best_metric:
            self.best_metric, self.best_epoch = metrics[self.metric], state.epoch
            if self.saver is not None:
                self.saver.save(trainer, state, "best.ckpt", with_optimizer=False)
                log.info(
                    "new best %s %s=%.2f after epoch %d",
                    self.prefix,
                    self.metric,
                    100 * self.best_metric,
                    state.epoch,
                )
