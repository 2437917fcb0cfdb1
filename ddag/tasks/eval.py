"""task=eval: evaluate a checkpoint on the configured dataset's test protocols."""

from pathlib import Path

from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.tasks.steps.data import build_dataset, build_protocols, check_protocols
from ddag.tasks.steps.networks import feature_extractor, network_from_checkpoint
from ddag.tasks.steps.report import checkpoint_identity, test_and_report
from ddag.tasks.steps.runtime import build_logger, output_dir, setup


def run(config: Config, context: RunContext = RunContext()) -> dict:
    setup(config)
    path = Path(config.task.checkpoint)
    network, meta, config = network_from_checkpoint(config, context)
    dataset = build_dataset(config)
    protocols = build_protocols(config)
    check_protocols(protocols, dataset.test_split())
    identity = checkpoint_identity(config, dataset, path, meta)
    extractor = feature_extractor(config, network)
    tensorboard = build_logger(config)
    summary = test_and_report(
        extractor,
        dataset,
        protocols,
        config,
        identity,
        {"checkpoint": str(path)},
        output_dir(config),
        tensorboard,
    )
    if tensorboard is not None:
        tensorboard.close()
    return summary
