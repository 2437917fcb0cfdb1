"""A run configuration read from a file is data: it may name only the project's own components.

`task.resume` rebuilds a run from the configuration its checkpoint stores, and checkpoints may
come from anywhere. Before that configuration is merged, validated or built (validation imports
every `_target_`, building calls it), every `_target_` it names must be one that the project's
config groups under `conf/` name, or one that this command composed itself, and its only
special keys may be `_target_` and `_partial_`. Anything else is refused with its key path,
before anything is imported or called.
"""

from pathlib import Path
from typing import Any, FrozenSet, Iterator, Tuple

import yaml

from ddag.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
ALLOWED_SPECIAL_KEYS = ("_target_", "_partial_")
MAX_DEPTH = 64


def _walk(node: Any, path: str = "", depth: int = 0) -> Iterator[Tuple[str, str, Any]]:
    """(key path, key, value) of every mapping entry, depth-first."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"the stored configuration is nested more than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), value
            yield from _walk(value, where, depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]", depth + 1)


def targets_of(config: Any) -> FrozenSet[str]:
    """Every `_target_` value a configuration names."""
    return frozenset(v for _, key, v in _walk(config) if key == "_target_" and isinstance(v, str))


def project_targets(conf_dir: Path = CONF_DIR) -> FrozenSet[str]:
    """The `_target_` values of every YAML file of the project's config groups."""
    found = set()
    for path in sorted(Path(conf_dir).rglob("*.yaml")):
        try:
            found |= targets_of(yaml.safe_load(path.read_text()))
        except yaml.YAMLError:
            continue  # not ours to judge here; Hydra reports it when the file is composed
    return frozenset(found)


def check_stored_config(stored: Any, where: str, composed: Any = None) -> None:
    """ConfigError unless every `_target_` of `stored` is a project target (or one of the
    `composed` config's) and its only special keys are `_target_` and `_partial_`."""
    allowed = project_targets() | targets_of(composed or {})
    refused = []
    for path, key, value in _walk(stored):
        if key.startswith("_") and key.endswith("_") and key not in ALLOWED_SPECIAL_KEYS:
            refused.append(f"{path} (special key {key})")
        elif key == "_target_" and (not isinstance(value, str) or value not in allowed):
            refused.append(f"{path}={value!r}")
    if refused:
        shown = ", ".join(refused[:5]) + (
            f" (+{len(refused) - 5} more)" if len(refused) > 5 else ""
        )
        raise ConfigError(
            f"{where} stores a run configuration that names what this project's config groups "
            f"do not: {shown}. A stored configuration is data and may only choose among the "
            "components of conf/; nothing was imported or run. Start a new run instead of "
            "resuming this file"
        )
