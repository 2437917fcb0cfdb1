"""task=eval: evaluate a checkpoint on the configured dataset's test protocols."""

from pathlib import Path

from omegaconf import DictConfig

from ddag.evaluation.evaluator import evaluate
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.plots import cmc_image, save_cmc_image
from ddag.evaluation.results import markdown_table, write_records
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def test_and_report(
    extractor: FeatureExtractor,
    dataset,
    protocols: list,
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
        protocols,
        flags=flags,
        identity=identity,
        rerank=common.rerank_settings(cfg),
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


def run(cfg: DictConfig) -> dict:
    common.setup(cfg)
    path = Path(str(cfg.task.checkpoint))
    network, meta, cfg = common.network_from_checkpoint(cfg)
    dataset = common.build_dataset(cfg)
    protocols = common.build_protocols(cfg, dataset)
    identity = common.checkpoint_identity(cfg, dataset, path, meta)
    extractor = FeatureExtractor(network, common.loader_settings(cfg), flip=bool(cfg.eval.flip))
    tensorboard = common.build_logger(cfg)
    summary = test_and_report(
        extractor,
        dataset,
        protocols,
        cfg,
        identity,
        {"checkpoint": str(path)},
        common.output_dir(cfg),
        tensorboard,
    )
    if tensorboard is not None:
        tensorboard.close()
    return summary
