"""task=eval: evaluate a checkpoint on the configured dataset's test protocols."""

import copy
from pathlib import Path

from omegaconf import DictConfig

from ddag.engine.checkpoint import (
    is_ms_zoo_checkpoint,
    load_into,
    ms_zoo_to_ddag,
    read_checkpoint,
)
from ddag.errors import CheckpointError
from ddag.evaluation.evaluator import evaluate
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.plots import cmc_image, save_cmc_image
from ddag.evaluation.results import markdown_table, write_records
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def num_classes_of(params: dict, path) -> int:
    weight = params.get("classifier.weight")
    if weight is None:
        raise CheckpointError(f"{path} has no classifier.weight: it is not a ddag/DDAG checkpoint")
    return int(weight.shape[0])


def test_and_report(
    extractor: FeatureExtractor,
    dataset,
    cfg: DictConfig,
    identity: dict,
    flags: dict,
    out_dir: Path,
    tensorboard=None,
    step: int = 0,
) -> dict:
    """Evaluate on the test split, write results.json, log the table; returns the means."""
    records = evaluate(
        extractor,
        dataset.test_split(),
        common.build_protocols(cfg, dataset),
        flags=flags,
        identity=identity,
    )
    path = write_records(records, out_dir / "results.json")
    save_cmc_image(records, out_dir / "cmc.png")
    table = markdown_table(records)
    log.info("test results (%s), written to %s\n%s", dataset.name, path, table)
    summary = {f"{r.protocol}/{r.feature}/{m}": v for r in records for m, v in r.mean.items()}
    if tensorboard is not None:
        tensorboard.log_metrics("test", summary, step)
        tensorboard.log_image("test/cmc", cmc_image(records), step)
    return summary


def _model_zoo_network(cfg: DictConfig, params: dict, path: Path):
    """Network for a model-zoo DDAG checkpoint: shared stems, IWPA without bias, no graph branch.

    The port routes both modalities through one ResNet-50 (`resnet50.*`); its two-stream copies
    are never used, and its graph heads were never saved (the graph branch is train-only anyway).
    """
    log.info(
        "%s is a MindSpore model-zoo DDAG checkpoint: evaluating it with its own layout "
        "(model.stems=shared, IWPA convolutions without bias, no graph branch)",
        path,
    )
    model = _without_pretrained(common.to_dict(cfg.model))
    model.update(stems="shared", graph_attention=None)
    if model.get("part_attention"):
        model["part_attention"]["conv_bias"] = False
    network = common.build_network(cfg, num_classes_of(params, path), model=model)
    keep_graph = network.has_graph_attention

    def rename(name):
        if name.startswith("graph_att.") and not keep_graph:
            return None
        return ms_zoo_to_ddag(name, "shared")

    try:
        report = load_into(network, params, strict=True, rename=rename)
    except CheckpointError as err:
        raise CheckpointError(
            f"{err}. Model-zoo DDAG checkpoints are ResNet-50 networks: "
            "evaluate them with model/backbone=resnet50"
        ) from err
    return network, report


def _without_pretrained(model: dict) -> dict:
    """The weights come from the checkpoint: do not load an ImageNet backbone first."""
    model = copy.deepcopy(model)
    model.get("backbone", {}).pop("pretrained", None)
    return model


def load_network(cfg: DictConfig, path: Path):
    """Network + load report for any checkpoint ddag can read (its own or the model zoo's)."""
    params, meta = read_checkpoint(path)
    if is_ms_zoo_checkpoint(params):
        network, report = _model_zoo_network(cfg, params, path)
        return network, report, meta
    model = meta.get("model")
    if model is not None:
        log.info("building the network from the model configuration stored in %s", path.name)
    model = _without_pretrained(model if model is not None else common.to_dict(cfg.model))
    network = common.build_network(cfg, num_classes_of(params, path), model=model)
    return network, load_into(network, params, strict=True), meta


def run(cfg: DictConfig) -> dict:
    common.setup(cfg)
    path = Path(str(cfg.task.checkpoint))
    dataset = common.build_dataset(cfg)
    network, report, meta = load_network(cfg, path)
    log.info("loaded %s: %s", path, report.summary())
    identity = {
        "checkpoint": str(path),
        "epoch": meta.get("state", {}).get("epoch"),
        "config_hash": common.config_hash(cfg),
        "dataset": dataset.name,
    }
    extractor = FeatureExtractor(network, common.loader_settings(cfg), flip=bool(cfg.eval.flip))
    tensorboard = common.build_logger(cfg)
    summary = test_and_report(
        extractor,
        dataset,
        cfg,
        identity,
        {"checkpoint": str(path)},
        common.output_dir(cfg),
        tensorboard,
    )
    if tensorboard is not None:
        tensorboard.close()
    return summary
