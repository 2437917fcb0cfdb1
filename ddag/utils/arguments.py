"""The one check of a config node's keys against the constructor it is handed to.

Used by the start-up validator (`ddag/config/validate.py`, every `_target_` node of the composed
config) and by the model-spec builder (`ddag/models/architecture.py`, specs that may come from a
checkpoint file): a key the constructor does not take is named with the closest accepted one,
and a plain value of the wrong type is refused before anything is built.
"""

import collections.abc
import difflib
import inspect
import typing
from typing import Any, Callable, Optional

from ddag.errors import ConfigError


def accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` fits a primitive-ish annotation; unknown annotations accept anything."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return any(accepts(arg, value) for arg in typing.get_args(annotation))
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
        return len(args) != 1 or all(accepts(args[0], v) for v in value)
    return True


def describe(annotation: Any) -> str:
    """A type annotation as a user reads it: `int`, `Optional[float]`."""
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def closest(name: str, candidates, cutoff: float = 0.6) -> Optional[str]:
    """The candidate closest to a mistyped `name`, or None when nothing is close enough."""
    hint = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=cutoff)
    return hint[0] if hint else None


def check_arguments(target: Callable, target_name: str, node: dict, path: str) -> None:
    """ConfigError naming the key when `node` holds a key `target` does not take, or a plain
    value of the wrong type. Keys starting with "_" (Hydra's) and nested mappings (checked as
    nodes of their own) are skipped; a target taking **kwargs accepts any key."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n
        for n, p in params.items()
        if p.kind is not inspect.Parameter.VAR_POSITIONAL and n != "self"
    ]
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:
        hints = {}
    prefix = f"{path}." if path else ""
    for key, value in node.items():
        if str(key).startswith("_"):
            continue
        if key not in params or key == "self":
            hint = closest(key, accepted)
            raise ConfigError(
                f"unknown key {prefix + str(key)!r}: {target_name} accepts {accepted}"
                + (f"; did you mean {prefix}{hint}?" if hint else "")
            )
        if isinstance(value, dict):
            continue
        annotation = hints.get(key, params[key].annotation)
        if not accepts(annotation, value):
            raise ConfigError(
                f"wrong type for {prefix + str(key)!r}: {target_name} expects "
                f"{describe(annotation)}, got {value!r} ({type(value).__name__})"
            )
