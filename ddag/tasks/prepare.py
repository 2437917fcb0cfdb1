"""task=prepare: check a dataset root (task.mode=check) or prepare it (task.mode=prepare)."""

from omegaconf import DictConfig

from ddag.data.datasets.sysu import SYSUDataset
from ddag.data.prepare import prepare_sysu
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run(cfg: DictConfig) -> dict:
    dataset = common.build_dataset(cfg, check=False)
    report = dataset.check(decode=True)
    if report is None:
        log.info("dataset %s needs no preparation", dataset.name)
        return {}
    log.info("dataset report:\n%s", report.text())
    report.raise_on_errors()
    written = {}
    if cfg.task.mode == "prepare" and isinstance(dataset, SYSUDataset):
        written = prepare_sysu(dataset)
    return {
        "errors": len(report.errors),
        "warnings": len(report.findings) - len(report.errors),
        **written,
    }
