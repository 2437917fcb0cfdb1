"""Start-up check of every `_target_` node: importable, known keys, primitive types.

Hydra reports a bad key only when the node is instantiated (for an evaluation protocol, after
training) and accepts a wrong primitive type silently; this walks the composed config first and
raises ConfigError with the key path, the target and the accepted names.
"""

import dataclasses
import importlib
from typing import Any, Iterator, Tuple

from ddag.config.schema import TASK_SCHEMAS, Config
from ddag.engine.phases import has_window, split_window
from ddag.errors import ConfigError
from ddag.utils.arguments import check_arguments, closest
from ddag.utils.fields import check_fields


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
        hint = closest(attribute, [n for n in dir(module) if not n.startswith("_")])
        raise ConfigError(
            f"_target_ {path!r}: {module_path} has no attribute {attribute!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
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


def check_node(path: str, node: dict) -> None:
    """Validate one `_target_` node against the target's signature (a loss term's or an
    augmentation's epoch window first: `ddag.engine.phases`)."""
    if has_window(path):
        node, _ = split_window(node, path)
    target_name = str(node["_target_"])
    check_arguments(locate(target_name), target_name, node, path)


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


def _check_task(container: dict) -> None:
    """The task exists and every value it requires ("???" in its schema) is given."""
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


def _section_schemas(container: dict) -> dict:
    """{section name: its schema dataclass} for the fixed sections, the task's by its name."""
    task = container.get("task") or {}
    schemas = {"task": TASK_SCHEMAS.get(task.get("name") if isinstance(task, dict) else None)}
    for section in dataclasses.fields(Config):
        factory = section.default_factory
        if section.name != "task" and dataclasses.is_dataclass(factory):
            schemas[section.name] = factory
    return schemas


def _check_fixed_sections(container: dict) -> None:
    """Keys added with "+" to a schema section (task, runtime, ...) are typos: name them."""
    task = container.get("task") or {}
    for name, schema in _section_schemas(container).items():
        if schema is None:
            continue
        owner = f"task={task.get('name')}" if name == "task" else name
        known = [f.name for f in dataclasses.fields(schema)]
        for key in container.get(name) or {}:
            if key not in known:
                hint = closest(key, known)
                raise ConfigError(
                    f"unknown key '{name}.{key}'; {owner} accepts {known}"
                    + (f"; did you mean {name}.{hint}?" if hint else "")
                )


def _check_field_rules(container: dict) -> None:
    """The choices and ranges each schema field declares (`ddag.utils.fields`)."""
    for section, schema in _section_schemas(container).items():
        values = container.get(section) or {}
        if schema is not None and isinstance(values, dict):
            check_fields(schema, values, section)
    check_fields(Config, container)


def validate_config(container: dict) -> None:
    """Check fixed sections, field rules, the task and every `_target_` node (the model's as
    every other component's) of a resolved config."""
    _check_fixed_sections(container)
    _check_field_rules(container)
    _check_task(container)
    for path, node in _target_nodes(container, ""):
        check_node(path, node)
