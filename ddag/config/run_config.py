"""The composed configuration as typed objects: converted once, at the composition root.

`run_config` validates a composed config (every key, choice, range and `_target_` node) and
turns it into the schema dataclasses: a `Config` whose `task` is the task's own schema
(`TrainTask`, `EvalTask`, ...), whose `runtime` and `loader` are the engine's and the data
pipeline's settings objects, and whose component sections (dataset, model, loss, optimizer,
schedule, logger, eval.protocol) are plain dicts handed to the builders. Tasks receive this
object and never see Hydra or OmegaConf.
"""

import dataclasses
import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ddag.config.schema import TASK_SCHEMAS, Config
from ddag.config.validate import validate_config
from ddag.errors import ConfigError

# Left out of the config hash: where the outputs go (paths, and the logger's folder inside the
# run folder) does not change the run, so the same settings in two folders hash alike.
UNHASHED_SECTIONS = ("paths", "hydra", "logger")


def run_config(composed: Any) -> Config:
    """The validated, typed `Config` of a composed config (a DictConfig or a plain dict)."""
    if isinstance(composed, DictConfig):
        try:
            container = OmegaConf.to_container(composed, resolve=True)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            raise ConfigError(
                f"{key}: its value cannot be resolved ({type(err).__name__}: "
                f"{str(err).splitlines()[0]}); set the environment variable it reads or give "
                "the key a value of its type on the command line"
            ) from None
    else:
        container = dict(composed)
    validate_config(container)
    task = container.get("task") or {}
    if not isinstance(task, dict) or task.get("name") not in TASK_SCHEMAS:
        raise ConfigError(f"task={task!r} is not a task; see conf/task/ for the tasks")
    schema = OmegaConf.structured(Config)
    schema.task = OmegaConf.structured(TASK_SCHEMAS[task["name"]])
    try:
        return OmegaConf.to_object(OmegaConf.merge(schema, container))
    except Exception as err:  # OmegaConf's validation errors name the key in their message
        raise ConfigError(f"the configuration does not fit its schema: {err}") from err


def config_dict(config: Config) -> dict:
    """The plain-Python copy of a typed config (what checkpoints and .hydra/config.yaml hold)."""
    return dataclasses.asdict(config)


def config_hash(config: Config) -> str:
    """Short stable hash of the config (outputs' location left out), recorded with results."""
    data = {k: v for k, v in config_dict(config).items() if k not in UNHASHED_SECTIONS}
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
