"""Runtime steps: device and seeds, the output folder, the TensorBoard logger."""

from pathlib import Path

from ddag.config.instantiate import build
from ddag.config.schema import Config
from ddag.engine.runtime import setup_runtime
from ddag.errors import ConfigError


def setup(config: Config):
    """Device, mode, seeds (and the msrun job) from `config.runtime` and `config.seed`."""
    return setup_runtime(config.runtime, config.seed)


def output_dir(config: Config) -> Path:
    """The run's output folder (created); ConfigError when the path is a file."""
    path = Path(config.paths.output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"paths.output_dir={path} is a file; choose a folder for the outputs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_logger(config: Config):
    """The TensorBoard logger of `config.logger`, or None when none is configured."""
    node = config.logger
    if not node or "_target_" not in node:
        return None
    return build(node)
