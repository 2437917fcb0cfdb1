"""Architectures as plain data: checked and built without running anything a file names.

A model spec is the `model` config node: nested dicts whose `_target_` names a class defined in
`ddag.models` (the DDAG network, a backbone recipe, an attention module), optionally with
`_partial_: true`, and whose other keys are constructor arguments with plain values. Checkpoints
store their spec, so a spec may come from a downloaded file: it is data, and may only choose
among our own components. Hydra's `instantiate` would call any importable callable a file
names (`builtins.open`, `os.system`, ...), so specs are built here instead.
"""

import copy
import functools
import importlib
import inspect
from typing import Any, Dict, List

from ddag.errors import ConfigError
from ddag.utils.arguments import check_arguments, closest

COMPONENT_PACKAGE = "ddag.models."
_SPEC_KEYS = ("_target_", "_partial_")
_PLAIN = (bool, int, float, str, type(None))


def resolve_component(path: Any, where: str = "model") -> type:
    """The class `path` names, if it is a class defined in `ddag.models` under that very name.

    The name must be the class's own `module.QualName`: an alias reached through another
    module's attributes (`ddag.models.x.os.system`) is refused without being called.
    """
    if not isinstance(path, str) or not path.startswith(COMPONENT_PACKAGE):
        raise ConfigError(
            f"{where}._target_={path!r} is not allowed: a model may only use classes of "
            f"the {COMPONENT_PACKAGE.rstrip('.')} package"
        )
    module_path, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError as err:
        raise ConfigError(f"{where}._target_={path!r}: no such module ({err})") from None
    component = module.__dict__.get(name)
    if not (
        inspect.isclass(component)
        and component.__module__ == module_path
        and component.__qualname__ == name
    ):
        defined = [
            n
            for n, v in vars(module).items()
            if inspect.isclass(v) and v.__module__ == module_path and not n.startswith("_")
        ]
        hint = closest(name, defined)
        raise ConfigError(
            f"{where}._target_={path!r} is not a component class defined in {module_path}"
            + (f"; did you mean {hint!r}?" if hint else f" (its classes: {defined})")
        )
    return component


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                raise ConfigError(f"{where}[{i}]: components inside lists are not supported")
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        check_spec(value, where)
        return
    raise ConfigError(f"{where} holds a {type(value).__name__}; only plain values are allowed")


def check_spec(spec: Any, where: str = "model") -> type:
    """Validate a spec (recursively) and return the class of its top node; ConfigError if not."""
    if not isinstance(spec, dict) or "_target_" not in spec:
        raise ConfigError(f"{where} must be a mapping with a _target_, got {type(spec).__name__}")
    component = resolve_component(spec["_target_"], where)
    for key, value in spec.items():
        key_where = f"{where}.{key}"
        if key == "_partial_":
            if not isinstance(value, bool):
                raise ConfigError(f"{key_where} must be true or false, got {value!r}")
        elif str(key).startswith("_") and key != "_target_":
            raise ConfigError(f"unknown key {key_where!r}: only _target_ and _partial_ are kept")
    check_arguments(component, spec["_target_"], spec, where)
    for key, value in spec.items():
        if key not in _SPEC_KEYS:
            _check_value(value, f"{where}.{key}")
    return component


def build_spec(spec: Dict, where: str = "model", **extra):
    """Build a checked spec: nested specs first; `_partial_` nodes become functools.partial."""
    component = check_spec(spec, where)
    kwargs = {}
    for key, value in spec.items():
        if key in _SPEC_KEYS:
            continue
        kwargs[key] = build_spec(value, f"{where}.{key}") if isinstance(value, dict) else value
    if spec.get("_partial_", False):
        return functools.partial(component, **kwargs, **extra)
    try:
        return component(**kwargs, **extra)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where} ({spec['_target_']}): {err}") from err


def build_network(model: Dict, num_classes: int):
    """A DDAG network from a plain model spec; absent/empty attention options mean none.

    Built by `build_spec`, which admits only `ddag.models` classes and plain values, whether the
    spec comes from the user's config or from a checkpoint file.
    """
    return build_spec(network_spec(model), num_classes=num_classes)


def expected_shapes(model: Dict, num_classes: int) -> Dict[str, tuple]:
    """The tensor shapes the network of `model` would allocate, as its components declare them
    (`expected_shapes` on the network class, `stem_shapes`/`trunk_shapes` on backbone recipes,
    `expected_shapes` on attention classes): checked against a file's tensors before building.

    Only the spec's cheap parts are built for this (recipes and `_partial_` factories).
    """
    spec = network_spec(model)
    component = check_spec(spec)
    declared = getattr(component, "expected_shapes", None)
    if declared is None:
        raise ConfigError(
            f"model._target_={spec['_target_']!r} declares no expected_shapes, so a checkpoint of "
            "it cannot be checked before it is built; add the classmethod next to the class"
        )
    arguments = {
        key: build_spec(value, f"model.{key}") if isinstance(value, dict) else value
        for key, value in spec.items()
        if key not in _SPEC_KEYS
    }
    try:
        return declared(num_classes=num_classes, **arguments)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model ({spec['_target_']}): {err}") from err


def shape_mismatches(expected: Dict[str, tuple], stored: Dict[str, tuple]) -> List[str]:
    """`name: expected vs stored` for every expected tensor the file lacks or shapes otherwise."""
    return [
        f"{name} {tuple(shape)} vs {stored[name] if name in stored else 'absent'}"
        for name, shape in expected.items()
        if stored.get(name) != tuple(shape)
    ]


def network_spec(model: Dict) -> Dict:
    """A copy of a DDAG model spec with absent or empty attention branches as None."""
    model = copy.deepcopy(model)
    for branch in ("part_attention", "graph_attention"):
        if not model.get(branch):
            model[branch] = None
    for branch in ("aggregation", "expansion"):  # newer options: absent from older specs
        if branch in model and not model[branch]:
            model[branch] = None
    return model
