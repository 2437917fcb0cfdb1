"""Start-up check of every `_target_` node: importable, known keys, primitive types.

Hydra reports a bad key only when the node is instantiated (for an evaluation protocol, after
training) and accepts a wrong primitive type silently; this walks the composed config first and
raises ConfigError with the key path, the target and the accepted names.
"""

import collections.abc
import difflib
import importlib
import inspect
import typing
from typing import Any, Iterator, Tuple

from ddag.config.mindspore_logs import LOG_LEVELS
from ddag.data.datasets.base import MODALITIES, SPLITS
from ddag.data.loader import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE
from ddag.data.synthetic_disk import LAYOUTS
from ddag.engine.runtime import AMP_LEVELS, DEVICE_TARGETS, MODES
from ddag.errors import ConfigError
from ddag.evaluation.metrics import DISTANCES
from ddag.evaluation.results import METRICS
from ddag.models.conversion import CONVERT_KINDS
from ddag.models.ddag import EXPORT_FORMATS


def locate(path: str) -> Any:
    """Import `package.module.Attribute` and return the attribute; ConfigError if impossible."""
    module_path, _, attribute = path.rpartition(".")
    if not module_path:
        raise ConfigError(f"_target_ {path!r} is not a dotted path like package.module.Class")
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as err:
        if err.name and module_path.startswith(err.name):
            raise ConfigError(f"_target_ {path!r}: no module named {err.name!r}") from err
        raise ConfigError(f"_target_ {path!r}: importing {module_path} failed: {err}") from err
    if not hasattr(module, attribute):
        choices = [n for n in dir(module) if not n.startswith("_")]
        hint = difflib.get_close_matches(attribute, choices, n=1)
        raise ConfigError(
            f"_target_ {path!r}: {module_path} has no attribute {attribute!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
        )
    return getattr(module, attribute)


def _target_nodes(node: Any, path: str) -> Iterator[Tuple[str, dict]]:
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            if not str(key).startswith("_"):
                yield from _target_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _target_nodes(value, f"{path}[{i}]")


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` fits a primitive-ish annotation; unknown annotations accept anything."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return len(args) != 1 or all(_accepts(args[0], v) for v in value)
    return True


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_node(path: str, node: dict) -> None:
    """Validate one `_target_` node against the target's signature."""
    target = locate(str(node["_target_"]))
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:
        hints = {}
    for key, value in node.items():
        if str(key).startswith("_"):
            continue
        full_key = f"{path}.{key}" if path else str(key)
        if key not in params:
            hint = difflib.get_close_matches(str(key), accepted, n=1)
            raise ConfigError(
                f"unknown key {full_key!r}: {node['_target_']} accepts {accepted}"
                + (f"; did you mean {path + '.' if path else ''}{hint[0]}?" if hint else "")
            )
        annotation = hints.get(key, params[key].annotation)
        if isinstance(value, dict):
            continue  # a nested node: checked on its own
        if not _accepts(annotation, value):
            raise ConfigError(
                f"wrong type for {full_key!r}: {node['_target_']} expects {_describe(annotation)}, "
                f"got {value!r} ({type(value).__name__})"
            )


# Valid values of the fixed keys: the modules that use them state them, this table points there.
CHOICES = {
    ("task", "selection"): ("last", "val", "test"),
    ("task", "selection_metric"): METRICS,
    ("runtime", "device_target"): DEVICE_TARGETS,
    ("runtime", "mode"): tuple(MODES),
    ("runtime", "amp_level"): AMP_LEVELS,
    ("runtime", "log_level"): tuple(LOG_LEVELS),
    ("task", "mode"): ("prepare", "check", "fetch_splits"),
    ("task", "layout"): LAYOUTS,
    ("task", "split"): SPLITS,
    ("task", "modality"): MODALITIES,
    ("task", "format"): tuple(EXPORT_FORMATS),
    ("task", "kind"): CONVERT_KINDS,
    ("eval", "distance"): DISTANCES,
}


# Lowest and highest accepted value of numeric keys of the fixed sections; None: unbounded. The
# upper bounds keep a typo from allocating the machine away (a 100000-pixel image, 10**9 ids).
RANGES = {
    ("seed", None): (0, 2**32 - 1),
    ("task", "epochs"): (1, 100_000),
    ("task", "eval_every"): (1, None),
    ("task", "save_every"): (1, None),
    ("task", "log_every"): (1, None),
    ("task", "max_steps_per_epoch"): (1, None),
    ("task", "top_k"): (1, 10_000),
    ("task", "num_queries"): (1, 1_000),
    ("task", "batch_size"): (1, 4096),
    ("task", "repeats"): (1, 10_000),
    ("task", "warmup"): (0, 10_000),
    ("task", "rounds"): (1, 1000),
    ("loader", "num_ids"): (1, 1024),
    ("loader", "num_instances"): (1, 256),
    ("loader", "height"): (MIN_IMAGE_SIDE, MAX_IMAGE_SIDE),
    ("loader", "width"): (MIN_IMAGE_SIDE, MAX_IMAGE_SIDE),
    ("loader", "padding"): (0, MAX_IMAGE_SIDE),
    ("loader", "test_batch_size"): (1, 4096),
    ("loader", "num_workers"): (1, 64),
    ("eval", "rerank_k1"): (1, 1000),
    ("eval", "rerank_k2"): (1, 1000),
    ("eval", "rerank_lambda"): (0, 1),
    ("runtime", "device_id"): (0, 1023),
    ("runtime", "num_threads"): (0, 1024),
}


def _check_ranges(container: dict) -> None:
    for (section, key), (low, high) in RANGES.items():
        if key is None:
            value, name = container.get(section), section
        else:
            value, name = (container.get(section) or {}).get(key), f"{section}.{key}"
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value < low or (high is not None and value > high):
            valid = f">= {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{name}={value} is out of range; it must be {valid}")


# How the values a task requires are written on the command line, for the error message.
PLACEHOLDERS = {
    "checkpoint": "PATH",
    "root": "PATH",
    "query": "FOLDER",
    "gallery": "FOLDER",
    "table": "NAME",
    "runs": "[DIR,...]",
    "features": "PATH",
}


def _check_choices(container: dict) -> None:
    for (section, key), choices in CHOICES.items():
        value = container.get(section, {}).get(key)
        if value is not None and value not in choices:
            raise ConfigError(
                f"{section}.{key}={value!r} is not valid; choose one of {list(choices)}"
            )
    task = container.get("task", {}).get("name")
    missing = [key for key, value in container.get("task", {}).items() if value == "???"]
    if missing:
        needed = " ".join(f"task.{key}={PLACEHOLDERS.get(key, 'VALUE')}" for key in missing)
        raise ConfigError(f"task={task} needs {', '.join(missing)}: add {needed}")
    if task is not None:
        try:
            importlib.import_module(f"ddag.tasks.{task}")
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"task={task!r} does not exist; see conf/task/ for the tasks"
            ) from err


def _check_fixed_sections(container: dict) -> None:
    """Keys added with "+" to a schema section (task, runtime, ...) are typos: name them."""
    import dataclasses

    from ddag.config.schema import TASK_SCHEMAS, Config

    task = container.get("task") or {}
    schemas = {"task": (TASK_SCHEMAS.get(task.get("name")), f"task={task.get('name')}")}
    for section in dataclasses.fields(Config):
        schemas.setdefault(section.name, (section.default_factory, section.name))
    for name, (schema, owner) in schemas.items():
        if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
            continue
        known = [f.name for f in dataclasses.fields(schema)]
        for key in container.get(name) or {}:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                raise ConfigError(
                    f"unknown key '{name}.{key}'; {owner} accepts {known}"
                    + (f"; did you mean {name}.{hint[0]}?" if hint else "")
                )


def validate_config(container: dict) -> None:
    """Check fixed sections, choices and every `_target_` node of a resolved config."""
    _check_fixed_sections(container)
    _check_choices(container)
    _check_ranges(container)
    for path, node in _target_nodes(container, ""):
        check_node(path, node)
