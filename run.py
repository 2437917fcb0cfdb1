"""ddag's one runner: `python run.py task=<train|eval> [group=option ...] [key=value ...]`.

Composes conf/, validates every key before anything is built, then runs ddag.tasks.<task.name>.
Errors the user can fix are printed as one paragraph; set HYDRA_FULL_ERROR=1 for tracebacks.
"""

import importlib
import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from ddag.config.schema import register_configs
from ddag.config.validate import validate_config
from ddag.errors import DdagError, Interrupted

log = logging.getLogger("ddag")
register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    try:
        validate_config(OmegaConf.to_container(cfg, resolve=True))
        task = importlib.import_module(f"ddag.tasks.{cfg.task.name}")
        return task.run(cfg)
    except DdagError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s: %s", type(err).__name__, err)
        sys.exit(130 if isinstance(err, Interrupted) else 1)


if __name__ == "__main__":
    main()
