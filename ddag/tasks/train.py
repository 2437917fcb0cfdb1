"""task=train: train DDAG, select a model, evaluate it on the test protocols."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import mindspore as ms
from omegaconf import DictConfig, OmegaConf

from ddag.checkpoints.meta import CheckpointMeta, InputSpec
from ddag.checkpoints.network import network_from
from ddag.checkpoints.store import read_checkpoint
from ddag.config.instantiate import build
from ddag.config.resume import resumed_config
from ddag.config.validate import validate_config
from ddag.engine.callbacks import CheckpointSaver, PeriodicEvaluation, ProgressLogger
from ddag.engine.distributed import gradient_reducer
from ddag.engine.step import make_train_step
from ddag.engine.trainer import StopRequested, Trainer, TrainState
from ddag.errors import ConfigError, Interrupted
from ddag.evaluation.evaluator import evaluate
from ddag.evaluation.features import FeatureExtractor
from ddag.io.checkpoint import load_into, remove_stale_temporaries
from ddag.losses.objective import Objective
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def _selection_split(cfg: DictConfig, dataset):
    """(split, prefix) scored during training for model selection, or (None, None) for "last"."""
    selection = cfg.task.selection
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


@dataclass
class ResumePoint:
    """The checkpoint a run continues from: its file, tensors and metadata."""

    path: Path
    params: dict
    meta: CheckpointMeta


def _resume_point(cfg: DictConfig, out_dir: Path) -> Optional[ResumePoint]:
    """The checkpoint `task.resume` names (auto: this run folder's last.ckpt), or None."""
    resume = cfg.task.resume
    if not resume:
        return None
    path = out_dir / "checkpoints" / "last.ckpt" if resume == "auto" else Path(str(resume))
    if resume == "auto" and not path.is_file():
        log.info("task.resume=auto: no %s yet, starting from scratch", path)
        return None
    remove_stale_temporaries(path.parent)
    params, meta = read_checkpoint(path)
    if meta.state is None:
        raise ConfigError(f"task.resume={path}: the checkpoint has no training state to resume")
    return ResumePoint(path, params, meta)


def _resumed_config(cfg: DictConfig, point: ResumePoint, command_line) -> DictConfig:
    """The run's own config from its checkpoint, with the command line's accepted changes;
    the run folder's .hydra/config.yaml is rewritten to say so."""
    if not point.meta.config:
        log.warning("%s stores no run config; resuming with this command's", point.path)
        return cfg
    try:
        resumed, changes = resumed_config(
            point.meta.config, common.to_dict(cfg), command_line, bool(cfg.task.resume_changes)
        )
    except ConfigError:
        common.record_run_config(OmegaConf.create(point.meta.config))  # Hydra wrote this command's
        raise
    if changes:
        log.warning(
            "resuming %s with settings that differ from the ones it was trained with "
            "(task.resume_changes=true); the run mixes both:\n  %s",
            point.path,
            "\n  ".join(changes),
        )
    validate_config(resumed)
    resumed = OmegaConf.create(resumed)
    common.record_run_config(resumed)
    return resumed


def _selection_callback(cfg, dataset, protocols, network, extractor, saver, tensorboard):
    """PeriodicEvaluation on the selection split (mean over the run's protocols), or None."""
    split, prefix = _selection_split(cfg, dataset)
    if split is None:
        return None
    feature = "FC_att" if network.has_part_attention else "FC"

    def score() -> dict:
        records = evaluate(extractor, split, protocols, distance=cfg.eval.distance)
        records = [r for r in records if r.feature == feature]
        return {k: sum(r.mean[k] for r in records) / len(records) for k in records[0].mean}

    every = int(cfg.task.eval_every)
    metric = cfg.task.selection_metric
    return PeriodicEvaluation(score, every, metric, saver, tensorboard, prefix)


def _load_selected(cfg, out_dir: Path, network, state: TrainState, selection) -> dict:
    """Load best.ckpt when a selection ran; returns the flags recorded with the results.

    The flags say what was done: without a validation split `task.selection=val` tests the last
    epoch, and the record says `selection: last` (with the requested policy beside it).
    """
    best = out_dir / "checkpoints" / "best.ckpt"
    done = cfg.task.selection if selection is not None and best.is_file() else "last"
    flags = {
        "selection": done,
        "selected_epoch": state.epoch,
        "test_set_selection": done == "test",
        "checkpoint": state.last_checkpoint,
    }
    if done != cfg.task.selection:
        flags["requested_selection"] = cfg.task.selection
    if done != "last":
        load_into(network, read_checkpoint(best)[0], strict=True)
        flags.update(selected_epoch=selection.best_epoch, checkpoint=str(best))
        log.info("testing the model of epoch %d (best on %s)", selection.best_epoch, done)
    return flags


def _mixed_precision(cfg: DictConfig, network):
    """Loss scaler for `runtime.amp_level` (None at O0), after switching the backbone to float16.

    O1, O2 and auto: the stems and trunk compute in float16 with BatchNorm in float32; O3 also
    runs BatchNorm in float16. Heads, attention branches and losses stay in float32.
    """
    level = str(cfg.runtime.amp_level)
    if level == "O0" or (level == "auto" and cfg.runtime.device_target == "CPU"):
        return None
    network.use_mixed_precision(keep_batchnorm_fp32=level != "O3")
    log.info("mixed precision %s: float16 backbone, dynamic loss scaling", level)
    return ms.amp.DynamicLossScaler(scale_value=2.0**12, scale_factor=2, scale_window=500)


@dataclass
class TrainingRun:
    """Everything `build` wires together for `fit` and `report`."""

    cfg: DictConfig
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


def _train_step(cfg: DictConfig, context, network, objective, steps: int):
    """(compiled step, optimizer, per-step learning rate of the head group)."""
    loss_scaler = _mixed_precision(cfg, network)
    lr_factors = build(cfg.schedule).per_step(1.0, int(cfg.task.epochs), steps)
    recipe = build(cfg.optimizer)
    optimizer = recipe.build(network, lr_factors)
    step_fn = make_train_step(
        objective,
        optimizer,
        gradient_reducer(context, optimizer),
        jit=bool(cfg.runtime.jit_step),
        loss_scaler=loss_scaler,
    )
    return step_fn, optimizer, lr_factors * recipe.lr


def _callbacks(cfg, out_dir, dataset, protocols, network, optimizer, extractor, is_main):
    """(callbacks in order, TensorBoard logger or None, the model-selection callback or None)."""
    tensorboard = saver = selection = None
    if is_main:  # only rank 0 writes checkpoints, events and results
        tensorboard = common.build_logger(cfg)
        meta = CheckpointMeta(
            kind="run",
            model=common.to_dict(cfg.model),
            input=InputSpec(int(cfg.loader.height), int(cfg.loader.width)),
            dataset=dataset.name,
            config=common.to_dict(cfg),
            config_hash=common.config_hash(cfg),
        )
        saver = CheckpointSaver(
            out_dir / "checkpoints", network, optimizer, meta, int(cfg.task.save_every)
        )
        selection = _selection_callback(
            cfg, dataset, protocols, network, extractor, saver, tensorboard
        )
    # Evaluation before saving: last.ckpt then holds the scores and best epoch of its epoch.
    compiles = bool(cfg.runtime.jit_step)
    callbacks = [ProgressLogger(int(cfg.task.log_every), compiles), tensorboard, selection, saver]
    return [cb for cb in callbacks if cb is not None], tensorboard, selection, saver


def build_run(cfg: DictConfig, point: Optional[ResumePoint] = None) -> TrainingRun:
    """Data, network, objective, compiled step, optimizer, callbacks and trainer of a run
    (continuing `point` when given)."""
    context = common.setup(cfg)
    out_dir = common.output_dir(cfg)
    dataset = common.build_dataset(cfg)
    # Test protocols and the test split are checked now, not after hours of training.
    protocols = common.build_protocols(cfg)
    common.check_protocols(protocols, dataset.test_split())
    common.log_start_banner(cfg, dataset, out_dir)
    settings = common.loader_settings(cfg)
    sampler, pipeline = common.training_data(cfg, dataset, context.size, context.rank)
    if context.size > 1:
        log.info(
            "data parallel over %d ranks: global batch %d x %d pairs, %d per rank; the "
            "learning rate is not scaled (the global batch is the configured one)",
            context.size,
            settings.num_ids,
            settings.num_instances,
            sampler.batch_size,
        )
    if point is None:
        network = common.build_network(cfg, dataset.num_train_ids)
    else:
        loaded = network_from(point.path, point.params, point.meta, common.to_dict(cfg.model))
        network = loaded.network
    objective = Objective(
        network, common.build_loss_terms(cfg), batch_pairs=sampler.batch_size, seed=int(cfg.seed)
    )
    steps = sampler.batches_per_epoch
    if cfg.task.max_steps_per_epoch:
        steps = min(steps, int(cfg.task.max_steps_per_epoch))
    step_fn, optimizer, lr_per_step = _train_step(cfg, context, network, objective, steps)
    state = _restore(point, network, optimizer)
    extractor = FeatureExtractor(network, settings, flip=bool(cfg.eval.flip))
    callbacks, tensorboard, selection, saver = _callbacks(
        cfg, out_dir, dataset, protocols, network, optimizer, extractor, context.is_main
    )
    trainer = Trainer(
        step_fn,
        objective,
        pipeline,
        sampler,
        int(cfg.task.epochs),
        lr_per_step,
        callbacks,
        steps,
        images_per_step=2 * sampler.batch_size,
    )
    return TrainingRun(
        cfg,
        out_dir,
        context.is_main,
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


def fit(run: TrainingRun) -> TrainState:
    """Train to the last epoch; a Ctrl-C or SIGTERM ends in Interrupted with the resume command."""
    state = run.state
    try:
        return run.trainer.fit(state)
    except (KeyboardInterrupt, StopRequested) as err:
        cause = f"{err} received" if isinstance(err, StopRequested) else "KeyboardInterrupt"
        raise Interrupted(
            f"training stopped ({cause}) at epoch {state.epoch}, step {state.step}. The last "
            f"complete checkpoint is {state.last_checkpoint or 'not written yet'}; continue "
            f"with: python run.py task.resume=auto hydra.run.dir={run.out_dir}"
        ) from err


def report(run: TrainingRun, state: TrainState) -> dict:
    """Write the history, load the selected model, evaluate it on the test protocols."""
    history = {
        "term_names": list(run.objective.term_names),
        "epoch_losses": state.epoch_losses,
        "selection": run.selection.history if run.selection is not None else [],
    }
    (run.out_dir / "train_history.json").write_text(json.dumps(history, indent=2))
    flags = _load_selected(run.cfg, run.out_dir, run.network, state, run.selection)
    if flags["selection"] == "last" and run.saver is not None:
        # best.ckpt is always the selected model; with "last" selection, the last epoch's.
        best = run.saver.save(run.trainer, state, "best.ckpt", with_optimizer=False)
        flags["checkpoint"] = str(best)
    summary = common.test_and_report(
        run.extractor,
        run.dataset,
        run.protocols,
        run.cfg,
        common.run_identity(run.cfg, run.dataset),
        flags,
        run.out_dir,
        run.tensorboard,
        state.step,
    )
    if run.selection is not None and run.selection.history:
        # The model-selection score of the tested model: what a hyper-parameter search ranks.
        summary[f"{run.selection.prefix}/{run.selection.metric}"] = run.selection.best_metric
    if run.tensorboard is not None:
        run.tensorboard.log_hparams(common.command_line_values(), summary)
        run.tensorboard.close()
    return summary


def _restore(point: Optional[ResumePoint], network, optimizer) -> TrainState:
    """The loop state of `point` with its optimiser state loaded (or a new one); the network
    holds the checkpoint's weights already (`network_from`, strict)."""
    if point is None:
        return TrainState()
    optimizer_state = {k: v for k, v in point.params.items() if k.startswith("optimizer.")}
    load_into(network, optimizer_state, strict=False, optimizer=optimizer)
    state = TrainState.from_meta(point.meta.state)
    state.last_checkpoint = str(point.path)
    log.info("resumed from %s at epoch %d, step %d", point.path, state.epoch, state.step)
    return state


def run(cfg: DictConfig) -> dict:
    point = _resume_point(cfg, common.output_dir(cfg))
    if point is not None:
        cfg = _resumed_config(cfg, point, common.command_line_keys())
    training = build_run(cfg, point)
    state = fit(training)
    return report(training, state) if training.is_main else {}
