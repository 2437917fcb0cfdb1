"""task=train: train DDAG, select a model, evaluate it on the test protocols."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ddag.checkpoints.checkpointer import Checkpointer, ResumePoint
from ddag.checkpoints.meta import CheckpointMeta, InputSpec
from ddag.config.context import RunContext
from ddag.config.instantiate import build
from ddag.config.resume import resumed_config
from ddag.config.run_config import config_dict, config_hash, run_config
from ddag.config.schema import Config
from ddag.config.stored import check_stored_config
from ddag.engine.callbacks import CheckpointSaver, PeriodicEvaluation, ProgressLogger
from ddag.engine.schedules import schedule_rates
from ddag.engine.trainer import StopRequested, Trainer, TrainState
from ddag.errors import CheckpointError, ConfigError, Interrupted
from ddag.evaluation.evaluator import evaluate
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.results import read_records, record_means
from ddag.losses.objective import Objective
from ddag.tasks.steps.data import build_dataset, build_protocols, check_protocols, training_data
from ddag.tasks.steps.networks import build_network, build_objective, feature_extractor
from ddag.tasks.steps.report import log_start_banner, run_identity, test_and_report
from ddag.tasks.steps.runtime import build_logger, output_dir, setup
from ddag.tasks.steps.training import build_train_step
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def _selection_split(config: Config, dataset):
    """(split, prefix) scored during training for model selection, or (None, None) for "last"."""
    selection = config.task.selection
    if selection == "test":
        log.warning(
            "task.selection=test picks the model on the test set (reference behaviour); "
            "results are flagged test_set_selection=true"
        )
        return dataset.test_split(), "test"
    if selection == "val":
        split = dataset.val_split()
        if split is None:
            log.warning("%s has no validation identities; selecting the last epoch", dataset.name)
            return None, None
        return split, "val"
    return None, None


def _resume_point(config: Config, out_dir: Path) -> Optional[ResumePoint]:
    """The checkpoint `task.resume` names (auto: this run folder's last.ckpt), or None."""
    if not config.task.resume:
        return None
    return Checkpointer(out_dir / "checkpoints").resume_point(config.task.resume)


def _resumed_config(config: Config, point: ResumePoint, context: RunContext) -> Config:
    """The run's own config from its checkpoint, with the command line's accepted changes;
    the run folder's .hydra/config.yaml is rewritten to say so."""
    if not point.meta.config:
        log.warning("%s stores no run config; resuming with this command's", point.path)
        return config
    check_stored_config(point.meta.config, str(point.path), composed=config_dict(config))
    try:
        resumed, changes = resumed_config(
            point.meta.config, config_dict(config), context.keys(), config.task.resume_changes
        )
    except ConfigError:
        context.record(point.meta.config)  # Hydra wrote this command's
        raise
    if changes:
        log.warning(
            "resuming %s with settings that differ from the ones it was trained with "
            "(task.resume_changes=true); the run mixes both:\n  %s",
            point.path,
            "\n  ".join(changes),
        )
    typed = run_config(resumed)
    context.record(config_dict(typed))
    return typed


def _selection_callback(config, dataset, protocols, network, extractor, saver, tensorboard):
    """PeriodicEvaluation on the selection split (mean over the run's protocols), or None."""
    split, prefix = _selection_split(config, dataset)
    if split is None:
        return None
    feature = "FC_att" if network.has_part_attention else "FC"

    def score() -> dict:
        records = evaluate(extractor, split, protocols, distance=config.eval.distance)
        records = [r for r in records if r.feature == feature]
        return {k: sum(r.mean[k] for r in records) / len(records) for k in records[0].mean}

    task = config.task
    return PeriodicEvaluation(
        score, task.eval_every, task.selection_metric, saver, tensorboard, prefix
    )


def _load_selected(config, out_dir: Path, network, state: TrainState, selection) -> dict:
    """Load best.ckpt when a selection ran; returns the flags recorded with the results.

    The flags say what was done: without a validation split `task.selection=val` tests the last
    epoch, and the record says `selection: last` (with the requested policy beside it).
    """
    best = out_dir / "checkpoints" / "best.ckpt"
    done = config.task.selection if selection is not None and best.is_file() else "last"
    flags = {
        "selection": done,
        "selected_epoch": state.epoch,
        "test_set_selection": done == "test",
        "checkpoint": state.last_checkpoint,
    }
    if done != config.task.selection:
        flags["requested_selection"] = config.task.selection
    if done != "last":
        Checkpointer().load_weights(network, best)
        flags.update(selected_epoch=selection.best_epoch, checkpoint=str(best))
        log.info("testing the model of epoch %d (best on %s)", selection.best_epoch, done)
    return flags


@dataclass
class TrainingRun:
    """Everything `build` wires together for `fit` and `report`."""

    config: Config
    out_dir: Path
    is_main: bool
    dataset: Any
    protocols: list
    network: Any
    objective: Objective
    trainer: Trainer
    state: TrainState
    extractor: FeatureExtractor
    tensorboard: Any
    selection: Optional[PeriodicEvaluation]
    saver: Optional[CheckpointSaver] = None


def _train_step(config: Config, ranks, objective, steps: int):
    """(compiled step, optimizer, per-step learning rate of the head group)."""
    rates = schedule_rates(build(config.schedule), config.task.epochs, steps)
    step_fn, optimizer, recipe = build_train_step(config, objective, rates, ranks)
    return step_fn, optimizer, rates(recipe.lr, recipe.lr)


def _callbacks(config, out_dir, dataset, protocols, network, optimizer, extractor, is_main):
    """(callbacks in order, TensorBoard logger or None, the model-selection callback or None)."""
    tensorboard = saver = selection = None
    if is_main:  # only rank 0 writes checkpoints, events and results
        tensorboard = build_logger(config)
        meta = CheckpointMeta(
            kind="run",
            model=config.model,
            input=InputSpec(config.loader.height, config.loader.width),
            dataset=dataset.name,
            config=config_dict(config),
            config_hash=config_hash(config),
        )
        saver = CheckpointSaver(
            out_dir / "checkpoints", network, optimizer, meta, config.task.save_every
        )
        selection = _selection_callback(
            config, dataset, protocols, network, extractor, saver, tensorboard
        )
    # Evaluation before saving: last.ckpt then holds the scores and best epoch of its epoch.
    compiles = config.runtime.jit_step
    callbacks = [ProgressLogger(config.task.log_every, compiles), tensorboard, selection, saver]
    return [cb for cb in callbacks if cb is not None], tensorboard, selection, saver


def build_run(
    config: Config, point: Optional[ResumePoint] = None, context: RunContext = RunContext()
) -> TrainingRun:
    """Data, network, objective, compiled step, optimizer, callbacks and trainer of a run
    (continuing `point` when given)."""
    ranks = setup(config)
    out_dir = output_dir(config)
    dataset = build_dataset(config)
    # Test protocols and the test split are checked now, not after hours of training.
    protocols = build_protocols(config)
    check_protocols(protocols, dataset.test_split())
    log_start_banner(config, context, dataset, out_dir)
    settings = config.loader
    sampler, pipeline = training_data(config, dataset, ranks.size, ranks.rank)
    if ranks.size > 1:
        log.info(
            "data parallel over %d ranks: global batch %d x %d pairs, %d per rank; the "
            "learning rate is not scaled (the global batch is the configured one)",
            ranks.size,
            settings.num_ids,
            settings.num_instances,
            sampler.batch_size,
        )
    if point is None:
        network = build_network(config, dataset.num_train_ids)
    else:
        network = Checkpointer().resumed_network(point, config.model)
    views = settings.visible_views
    objective = build_objective(config, network, sampler.batch_size)
    steps = sampler.batches_per_epoch
    if config.task.max_steps_per_epoch:
        steps = min(steps, config.task.max_steps_per_epoch)
    step_fn, optimizer, lr_per_step = _train_step(config, ranks, objective, steps)
    state = _restore(point, network, optimizer)
    if point is not None:
        _check_resumed(state, point, optimizer, sampler.batches_per_epoch)
    extractor = feature_extractor(config, network, during_training=True)
    callbacks, tensorboard, selection, saver = _callbacks(
        config, out_dir, dataset, protocols, network, optimizer, extractor, ranks.is_main
    )
    trainer = Trainer(
        step_fn,
        objective,
        pipeline,
        sampler,
        config.task.epochs,
        lr_per_step,
        callbacks,
        steps,
        images_per_step=(1 + views) * sampler.batch_size,
    )
    return TrainingRun(
        config,
        out_dir,
        ranks.is_main,
        dataset,
        protocols,
        network,
        objective,
        trainer,
        state,
        extractor,
        tensorboard,
        selection,
        saver,
    )


def fit(run: TrainingRun, context: RunContext = RunContext()) -> TrainState:
    """Train to the last epoch; a Ctrl-C or SIGTERM ends in Interrupted with the command that
    continues the run (or, before its first checkpoint, the command that started it)."""
    state = run.state
    try:
        return run.trainer.fit(state)
    except (KeyboardInterrupt, StopRequested) as err:
        cause = f"{err} received" if isinstance(err, StopRequested) else "KeyboardInterrupt"
        where = (
            f"training stopped ({cause}) during epoch {state.epoch + 1}/{run.trainer.epochs}, "
            f"after step {state.step}"
        )
        if state.last_checkpoint:
            raise Interrupted(
                f"{where}. The last complete checkpoint is {state.last_checkpoint}; continue "
                f"with: python run.py task.resume=auto hydra.run.dir={run.out_dir}"
            ) from err
        command = " ".join(["python run.py", *context.overrides])
        raise Interrupted(
            f"{where}, before its first checkpoint: there is nothing to resume. Start it again "
            f"(overwrite=true replaces the folder, or give it a new one): {command}"
        ) from err


def report(run: TrainingRun, state: TrainState, context: RunContext = RunContext()) -> dict:
    """Write the history, load the selected model, evaluate it on the test protocols."""
    history = {
        "term_names": list(run.objective.term_names),
        "epoch_losses": state.epoch_losses,
        "selection": run.selection.history if run.selection is not None else [],
    }
    (run.out_dir / "train_history.json").write_text(json.dumps(history, indent=2))
    flags = _load_selected(run.config, run.out_dir, run.network, state, run.selection)
    if flags["selection"] == "last" and run.saver is not None:
        # best.ckpt is always the selected model; with "last" selection, the last epoch's.
        best = run.saver.save(run.trainer, state, "best.ckpt", with_optimizer=False)
        flags["checkpoint"] = str(best)
    summary = test_and_report(
        run.extractor,
        run.dataset,
        run.protocols,
        run.config,
        run_identity(run.config, run.dataset),
        flags,
        run.out_dir,
        run.tensorboard,
        state.step,
    )
    if run.selection is not None and run.selection.history:
        # The model-selection score of the tested model: what a hyper-parameter search ranks.
        summary[f"{run.selection.prefix}/{run.selection.metric}"] = run.selection.best_metric
    if run.tensorboard is not None:
        run.tensorboard.log_hparams(context.values(), summary)
        run.tensorboard.close()
    return summary


def _restore(point: Optional[ResumePoint], network, optimizer) -> TrainState:
    """The loop state of `point` with its optimiser state loaded (or a new one)."""
    if point is None:
        return TrainState()
    meta = Checkpointer().restore(point, network, optimizer)
    try:
        state = TrainState.from_meta(meta)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{point.path} is damaged or crafted: its loop state is unreadable ({err!r}). Resume "
            "from another checkpoint of the run, or start again"
        ) from None
    state.last_checkpoint = str(point.path)
    log.info(
        "resumed from %s, saved after epoch %d (step %d): training goes on with epoch %d",
        point.path,
        state.epoch,
        state.step,
        state.epoch + 1,
    )
    return state


def _check_resumed(state: TrainState, point: ResumePoint, optimizer, batches: int) -> None:
    """CheckpointError when a checkpoint's loop state cannot be where training stopped: a
    negative epoch or step, more steps than its epochs hold, or an optimiser whose step count
    differs (its learning-rate table is indexed by that count)."""
    counter = getattr(optimizer, "global_step", None)
    optimizer_step = int(counter.asnumpy().reshape(-1)[0]) if counter is not None else state.step
    problem = None
    if state.epoch < 0 or state.step < 0:
        problem = f"epoch {state.epoch} and step {state.step} cannot be negative"
    elif state.step > state.epoch * batches:
        problem = f"step {state.step} is past its {state.epoch} epoch(s) of {batches} steps"
    elif optimizer_step != state.step:
        problem = f"the optimiser counted {optimizer_step} steps, the loop {state.step}"
    if problem:
        raise CheckpointError(
            f"{point.path} is damaged or crafted: {problem}. Resume from another checkpoint "
            "of the run, or start again"
        )


def _finished(config: Config, point: ResumePoint) -> Optional[dict]:
    """The test means of a resumed run that already finished and was tested (None if not)."""
    results = output_dir(config) / "results.json"
    epoch = (point.meta.state or {}).get("epoch")
    done = isinstance(epoch, int) and epoch >= config.task.epochs  # else _check_resumed says
    if not (done and results.is_file()):
        return None
    records = read_records(results)
    log.info(
        "the run in %s is finished (epoch %d of %d) and tested (results.json): nothing to do. "
        "Train longer with task.epochs=<more> task.resume_changes=true, or start a new run",
        output_dir(config),
        config.task.epochs,
        config.task.epochs,
    )
    return record_means(records)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    point = _resume_point(config, output_dir(config))
    if point is not None:
        config = _resumed_config(config, point, context)
        finished = _finished(config, point)
        if finished is not None:
            return finished
    training = build_run(config, point, context)
    state = fit(training, context)
    return report(training, state, context) if training.is_main else {}
