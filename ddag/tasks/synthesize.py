"""task=synthesize: write the synthetic dataset to disk in the RegDB, SYSU-MM01 or LLCM layout."""

from pathlib import Path

from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.data.synthetic_disk import write_llcm, write_regdb, write_sysu
from ddag.errors import ConfigError
from ddag.tasks.steps.data import build_dataset
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    layout, root = config.task.layout, config.task.root
    if not root:
        raise ConfigError("task=synthesize needs the folder to write: add task.root=PATH")
    if Path(root).exists() and any(Path(root).iterdir()):
        raise ConfigError(f"task.root={root} is not empty; choose a new folder")
    dataset = build_dataset(config)
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
