"""task=synthesize: write the synthetic dataset to disk in the RegDB, SYSU-MM01 or LLCM layout."""

from pathlib import Path

from omegaconf import DictConfig

from ddag.data.synthetic_disk import LAYOUTS, write_llcm, write_regdb, write_sysu
from ddag.errors import ConfigError
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run(cfg: DictConfig) -> dict:
    layout, root = cfg.task.layout, cfg.task.root
    if layout not in LAYOUTS:
        raise ConfigError(f"task.layout={layout!r}; choose one of {list(LAYOUTS)}")
    if not root:
        raise ConfigError("task=synthesize needs the folder to write: add task.root=PATH")
    if Path(root).exists() and any(Path(root).iterdir()):
        raise ConfigError(f"task.root={root} is not empty; choose a new folder")
    dataset = common.build_dataset(cfg)
    writers = {"regdb": write_regdb, "sysu": write_sysu, "llcm": write_llcm}
    written = writers[layout](dataset, root)
    log.info(
        "wrote a synthetic %s copy to %s; use it with dataset=%s dataset.root=%s",
        layout,
        written,
        layout,
        written,
    )
    return {"root": str(written)}
