"""The configuration a resumed run continues with: its own, as its checkpoint stored it.

`python run.py task.resume=auto hydra.run.dir=X` composes the defaults; the run in X trained with
its own settings. Every setting the command line does not name is taken from the stored run
config; one the command line names and sets to another value is refused, unless
`task.resume_changes=true` says the change is intended.
"""

import copy
from typing import Any, List, Sequence, Tuple

from ddag.errors import ConfigError

ABSENT = "<absent>"
# Settings that may differ between an interrupted run and its resume: they change neither the
# model nor the data (where the outputs go, how often progress is logged, how to resume).
MAY_CHANGE = (
    "task.resume",
    "task.resume_changes",
    "task.log_every",
    "paths.output_dir",
    "overwrite",
)


def leaf_differences(old: Any, new: Any, prefix: str = "") -> List[Tuple[str, Any, Any]]:
    """(dotted key, old, new) of every leaf that differs between two plain configs; a key
    missing on one side is `ABSENT` there."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += leaf_differences(old.get(key, ABSENT), new.get(key, ABSENT), f"{prefix}{key}.")
        return found
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _dotted(override_key: str) -> str:
    """`model/backbone` (a config group) -> `model.backbone`; `+a.b` -> `a.b`."""
    return override_key.lstrip("+~").replace("/", ".")


def _named_by(key: str, command_line: Sequence[str]) -> bool:
    """Whether the command line set `key` (itself, a node above it or one below it)."""
    for given in map(_dotted, command_line):
        if key == given or key.startswith(given + ".") or given.startswith(key + "."):
            return True
    return False


def _set(config: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if value == ABSENT:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def resumed_config(
    stored: dict, composed: dict, command_line: Sequence[str], accept_changes: bool
) -> Tuple[dict, List[str]]:
    """(config to resume with, `key: stored -> new` lines of accepted command-line changes).

    Args:
        stored: the run config the checkpoint holds, in today's keys (`CheckpointMeta` reads
            every file through `ddag.checkpoints.meta.upgrade`).
        composed: the config Hydra composed for this command.
        command_line: keys and groups the command line set (`optimizer.lr`, `model/backbone`).
        accept_changes: `task.resume_changes`; otherwise a changed key is a ConfigError.
    """
    result = copy.deepcopy(composed)
    changes, refused = [], []
    for key, old, new in leaf_differences(stored, composed):
        if key.startswith(MAY_CHANGE) or key == "hydra" or key.startswith("hydra."):
            continue
        if _named_by(key, command_line):
            (changes if accept_changes else refused).append(f"{key}: {old!r} -> {new!r}")
        else:
            _set(result, key, old)
    architecture = [c for c in changes if c.startswith("model.")]
    if architecture:
        raise ConfigError(
            "task.resume continues the checkpoint's own network; the command line changes its "
            "architecture, which the stored tensors cannot take:\n  "
            + "\n  ".join(architecture)
            + "\nStart a new run for another model"
        )
    if refused:
        raise ConfigError(
            "task.resume continues the run with the settings it was trained with; the command "
            f"line changes {len(refused)} of them:\n  " + "\n  ".join(refused) + "\nDrop them "
            "to continue the run as it was, or add task.resume_changes=true to continue with "
            "them (the run then mixes both settings)"
        )
    return result, changes
