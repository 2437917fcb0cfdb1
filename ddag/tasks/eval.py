"""task=eval: evaluate a checkpoint on the configured dataset's test protocols."""

from pathlib import Path

from omegaconf import DictConfig

from ddag.evaluation.features import FeatureExtractor
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run(cfg: DictConfig) -> dict:
    common.setup(cfg)
    path = Path(str(cfg.task.checkpoint))
    network, meta, cfg = common.network_from_checkpoint(cfg)
    dataset = common.build_dataset(cfg)
    protocols = common.build_protocols(cfg)
    common.check_protocols(protocols, dataset.test_split())
    identity = common.checkpoint_identity(cfg, dataset, path, meta)
    extractor = FeatureExtractor(network, common.loader_settings(cfg), flip=bool(cfg.eval.flip))
    tensorboard = common.build_logger(cfg)
    summary = common.test_and_report(
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
