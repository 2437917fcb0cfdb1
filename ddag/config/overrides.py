"""Command-line overrides checked before Hydra composes them, so that a mistyped key, group or
option gets ddag's answer (the closest valid name and the valid choices) instead of Hydra's
"not in struct" or its option list with the internal `*_schema` entries.

Only what can be told for sure is reported; anything else is left to Hydra and the schema check.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ValidationError

from ddag.errors import ConfigError
from ddag.utils.arguments import closest

SCHEMA_SUFFIX = "_schema"


def config_groups(conf_dir) -> Dict[str, List[str]]:
    """{group: sorted options} of the config folder (`model/backbone`: [resnet18, ...]);
    Hydra's own groups (`hydra/...`) and the schema entries are left out."""
    conf_dir = Path(conf_dir)
    groups: Dict[str, List[str]] = {}
    for path in sorted(conf_dir.rglob("*.yaml")):
        group = path.parent.relative_to(conf_dir).as_posix()
        if group == "." or group.startswith("hydra") or path.stem.endswith(SCHEMA_SUFFIX):
            continue
        groups.setdefault(group, []).append(path.stem)
    return groups


def _hint(word: str, choices: Sequence[str]) -> str:
    match = closest(word, choices, cutoff=0.5)
    return f"; did you mean {match!r}?" if match else "."


def _override_arguments(argv: Sequence[str]) -> List[str]:
    """The `key=value` / `~key` overrides of a command line (flags such as -m and --cfg job out)."""
    return [a for a in argv if not a.startswith("-") and ("=" in a or a.startswith("~"))]


def _option_values(override) -> Optional[List[str]]:
    """The option names an override of a group selects, None when not plain names."""
    try:
        if override.is_sweep_override():
            return [str(v) for v in override.sweep_string_iterator()]
        value = override.value()
    except Exception:  # glob() and other sweeps Hydra expands itself
        return None
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values] if all(isinstance(v, str) for v in values) else None


def check_groups(overrides, groups: Dict[str, List[str]]) -> None:
    """ConfigError for an unknown config group or an option its folder does not have."""
    for override in overrides:
        key = override.key_or_group
        if key.startswith("hydra") or override.is_delete():
            continue
        if key in groups:
            for option in _option_values(override) or []:
                if option not in groups[key] and option != "null":
                    raise ConfigError(
                        f"{key}={option}: config group {key} has no option {option!r}"
                        f"{_hint(option, groups[key])} Choices: {', '.join(groups[key])}"
                    )
        elif "/" in key:
            raise ConfigError(
                f"{key}=...: there is no config group {key!r}{_hint(key, groups)} Groups: "
                f"{', '.join(sorted(groups))}"
            )


def plain_key_overrides(overrides, groups: Dict[str, List[str]]) -> list:
    """The `key=value` overrides (no `+`, `++` or `~`, no group, not Hydra's own): the ones
    whose key must already be in the composed config."""
    return [
        o
        for o in overrides
        if not (o.key_or_group.startswith("hydra") or o.key_or_group in groups)
        and "/" not in o.key_or_group
        and not (o.is_add() or o.is_delete() or o.is_force_add())
    ]


def check_keys(overrides, composed: DictConfig) -> None:
    """ConfigError for a plain key override (`plain_key_overrides`) the composed config lacks."""
    for override in overrides:
        key = override.key_or_group
        node, walked = composed, []
        for part in key.split("."):
            if isinstance(node, DictConfig) and part in node.keys():
                node = node._get_node(part)
                node = node if isinstance(node, (DictConfig, ListConfig)) else None
            elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
                node = None
            else:
                where = ".".join(walked) or "the config"
                keys = sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []
                prefix = ".".join(walked) + "." if walked else ""
                match = closest(part, keys, cutoff=0.5)
                hint = f"; did you mean {prefix}{match}?" if match else "."
                choices = f" Keys of {where}: {', '.join(keys)}." if keys else ""
                raise ConfigError(
                    f"unknown key {key!r}: {where} has no {part!r}{hint}{choices} A new key is "
                    f"added with +{key}=..."
                )
            walked.append(part)
        _check_type(composed, override)


def _check_type(composed: DictConfig, override) -> None:
    """ConfigError naming the key when a value cannot become the key's declared type
    (`task.epochs=abc`), instead of Hydra's conversion traceback hint."""
    if override.is_sweep_override():
        return
    value = override.value()
    if isinstance(value, str) and "${" in value:
        return  # resolved later; run_config names the key if it cannot be
    trial = composed.copy()
    try:
        OmegaConf.update(trial, override.key_or_group, value, merge=True)
    except ValidationError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{override.key_or_group}={value!r} is refused: {first}") from None


# Hydra's override grammar parses nested lists and dicts by recursion, taking about 1 MB per
# level: a 3,000-level `[[[...]]]` took 3.1 GB. ddag's values nest two levels (a list of
# lists of numbers); these bounds leave room for any config while refusing a crafted line.
MAX_OVERRIDE_DEPTH = 16
MAX_OVERRIDE_CHARS = 100_000


def check_override_size(argv: Sequence[str]) -> None:
    """ConfigError for an override longer than `MAX_OVERRIDE_CHARS` or nesting brackets deeper
    than `MAX_OVERRIDE_DEPTH`, before any parser sees it."""
    for argument in _override_arguments(argv):
        key = argument.split("=", 1)[0]
        if len(argument) > MAX_OVERRIDE_CHARS:
            raise ConfigError(
                f"the override of {key} is {len(argument)} characters long, more than the "
                f"{MAX_OVERRIDE_CHARS} a command-line value may have; put long values in a "
                "config file (conf/ or a YAML given with --config-dir)"
            )
        depth = deepest = 0
        for char in argument:
            if char in "[{(":
                depth += 1
                deepest = max(deepest, depth)
            elif char in "]})":
                depth -= 1
        if deepest > MAX_OVERRIDE_DEPTH:
            raise ConfigError(
                f"the override of {key} nests brackets {deepest} levels deep, more than the "
                f"{MAX_OVERRIDE_DEPTH} any ddag value needs (lists of lists are two); check the "
                "brackets of the value"
            )


def check_command_line(argv: Sequence[str], conf_dir, compose) -> None:
    """Check the overrides of `argv` against `conf_dir` before Hydra runs; `compose(overrides)`
    returns the config composed with the given group overrides (only called for key ones)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    check_override_size(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(_override_arguments(argv))
    except Exception:
        return  # Hydra reports syntax errors with their position
    groups = config_groups(conf_dir)
    check_groups(overrides, groups)
    keys = plain_key_overrides(overrides, groups)
    group_args = [
        o.input_line
        for o in overrides
        if o.key_or_group in groups and not o.is_sweep_override() and o.input_line
    ]
    presets = [o for o in overrides if o.key_or_group == "experiment"]
    if not keys and not presets:
        return
    try:
        composed = compose(group_args)
    except ConfigCompositionException as err:
        _refuse_preset_mismatch(err, presets)
        return
    except Exception:
        return
    check_keys(keys, composed)


def _refuse_preset_mismatch(err: Exception, presets: list) -> None:
    """An experiment preset's training keys under a task that has no such keys (`task=bench
    experiment=pmt_sysu_all`): say so instead of Hydra's schema message."""
    cause = err.__cause__ or err.__context__ or err
    missing = getattr(cause, "full_key", None)
    if not presets or not missing or not str(missing).startswith("task."):
        return
    preset = presets[0].input_line
    name = preset.split("=", 1)[1]
    raise ConfigError(
        f"{preset} sets {missing}, a key of the training task that the chosen task does not "
        "take: presets are for task=train. To run another task on a preset's model, choose the "
        f"groups it selects instead (conf/experiment/{name}.yaml lists them; for PMT: model=pmt "
        "loss=pmt optimizer=adamw_pmt loader=paper loader.height=256 loader.width=128)"
    )


def help_text(conf_dir) -> str:
    """`python run.py --help`: the config groups and their options, without schema entries."""
    lines = [
        "ddag: python run.py [group=option ...] [key=value ...] [-m for sweeps]",
        "",
        "Config groups (group=option; eval/protocol takes a list: eval/protocol=[a,b]):",
    ]
    for group, options in sorted(config_groups(conf_dir).items()):
        lines.append(f"  {group}: {', '.join(options)}")
    launchers = sorted(p.stem for p in (Path(conf_dir) / "hydra" / "launcher").glob("*.yaml"))
    lines += [
        "",
        "Sweeps (with -m):",
        f"  hydra/launcher: basic (default, one job after another), {', '.join(launchers)}, "
        "joblib (extra .[sweep])",
        "  hydra/sweeper: basic (default, every combination), optuna (extra .[sweep]: "
        "Optuna's search over the swept keys)",
    ]
    lines += [
        "",
        "Any key can be set with key=value (a new one with +key=value). The composed config:",
        "  python run.py --cfg job [overrides]      Hydra's own options: --hydra-help",
    ]
    return "\n".join(lines)
