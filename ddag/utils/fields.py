"""Settings fields that carry their own rules: the valid choices or range of a value.

A settings dataclass declares a field with `choice(...)` or `bounded(...)` instead of a bare
default; the rule lives in the field's metadata, so renaming the field keeps it, and
`check_fields` (the one validator of settings sections) finds every rule by walking the fields.
"""

import dataclasses
from typing import Any, Iterable, Optional

from ddag.errors import ConfigError

CHOICES_KEY = "ddag_choices"
RANGE_KEY = "ddag_range"


def _default(default: Any) -> dict:
    if isinstance(default, (list, dict, set)):
        return {"default_factory": lambda: type(default)(default)}
    return {"default": default}


def choice(default: Any, choices: Iterable[Any]) -> Any:
    """A field whose value must be one of `choices` (null is left to the type)."""
    return dataclasses.field(**_default(default), metadata={CHOICES_KEY: tuple(choices)})


def bounded(default: Any, low: float, high: Optional[float] = None) -> Any:
    """A numeric field accepted between `low` and `high` (inclusive; None: unbounded above).

    Upper bounds keep a typo from allocating the machine away (a 100000-pixel image).
    """
    return dataclasses.field(**_default(default), metadata={RANGE_KEY: (low, high)})


def field_rules(schema: type) -> dict:
    """{field name: (choices or None, (low, high) or None)} of the fields with a rule."""
    rules = {}
    for item in dataclasses.fields(schema):
        choices, limits = item.metadata.get(CHOICES_KEY), item.metadata.get(RANGE_KEY)
        if choices is not None or limits is not None:
            rules[item.name] = (choices, limits)
    return rules


def check_value(name: str, value: Any, choices, limits) -> None:
    """ConfigError naming `name` when `value` breaks its choices or range."""
    if value is None:
        return
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {list(choices)}")
    if limits is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = limits
    if value < low or (high is not None and value > high):
        valid = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name}={value} is out of range; it must be {valid}")


def check_fields(schema: type, values: dict, section: str = "") -> None:
    """Check the values of one settings section (a dict) against its schema's field rules."""
    for name, (choices, limits) in field_rules(schema).items():
        key = f"{section}.{name}" if section else name
        check_value(key, values.get(name), choices, limits)
