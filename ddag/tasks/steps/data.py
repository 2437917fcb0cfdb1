"""Data steps: the dataset, its training pipeline, the evaluation protocols."""

from pathlib import Path
from typing import List, Optional

from ddag.config.instantiate import build
from ddag.config.schema import Config
from ddag.data.loader import train_pipeline
from ddag.data.sampler import IdentitySampler
from ddag.engine.phases import split_window
from ddag.errors import ConfigError, DatasetError
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def build_dataset(config: Config, check: bool = True):
    """The dataset of `config.dataset`; with `check`, its quick doctor report has no errors."""
    dataset = build(config.dataset)
    report = dataset.check(decode=False) if check else None
    if report is not None:
        report.raise_on_errors()
        if report.findings:
            log.info(
                "dataset check: %d warning(s); run task=prepare for the full report",
                len(report.findings),
            )
    return dataset


def training_data(config: Config, dataset, num_shards: int = 1, shard_id: int = 0):
    """(sampler, pipeline) of the dataset's training split with the configured P x K sampler."""
    train = dataset.train_split()
    settings = config.loader
    sampler = IdentitySampler(
        train.visible.ids,
        train.thermal.ids,
        settings.num_ids,
        settings.num_instances,
        seed=config.seed,
        num_shards=num_shards,
        shard_id=shard_id,
    )
    augmentations, windows = [], []
    for name, node in settings.augment.items():
        node, window = split_window(node, f"loader.augment.{name}")
        augmentations.append(build(node))
        windows.append(window)
        if not window.always:
            log.info("augmentation %s acts in %s", name, window.describe())
    pipeline = train_pipeline(
        train.visible, train.thermal, sampler, settings, augmentations, windows
    )
    return sampler, pipeline


def dataset_root(config: Config) -> Optional[str]:
    """`dataset.root` of datasets read from disk; None for the synthetic one."""
    root = (config.dataset or {}).get("root")
    return str(root) if root else None


def build_protocols(config: Config) -> List:
    """The protocols selected in the eval/protocol config group, in selection order.

    A protocol's `split_dir: null` (the official SYSU-MM01 splits) means `<dataset.root>/exp`.
    """
    root = dataset_root(config)
    nodes = config.eval.protocol or {}
    if not nodes:
        raise ConfigError(
            "no evaluation protocol is selected; choose some, e.g. eval/protocol=[regdb_v2t]"
        )
    protocols = []
    for name, node in nodes.items():
        if "split_dir" in node and not node["split_dir"]:
            if not root:
                raise ConfigError(
                    f"eval.protocol.{name}.split_dir is not set and there is no dataset root to "
                    f"take <root>/exp from; add eval.protocol.{name}.split_dir=FOLDER (the "
                    "folder holding the authors' rand_perm_cam.mat)"
                )
            node = {**node, "split_dir": str(Path(root) / "exp")}
        protocols.append(build(node))
    return protocols


def check_protocols(protocols: List, split) -> None:
    """Each protocol's `check` of the test split, at start-up: DatasetError listing problems."""
    problems = [problem for protocol in protocols for problem in protocol.check(split)]
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DatasetError(
            f"the test split does not fit the selected protocols ({len(problems)} problem(s)):"
            f"\n  {shown}{more}\nRestore the listed folders from the original archive, or fix "
            "the split files; task=prepare task.mode=check lists every problem"
        )
