"""Table manifests (experiments/<table>.yaml) read as plain data and checked against their schema.

A manifest may come from anyone: it is parsed with YAML's safe loader, with aliases refused (a
few lines of nested aliases expand to billions of nodes), no tags that build Python objects,
and no interpolation (`${oc.env:HOME}` stays the text it is), then every key and value is
checked, so a malformed manifest is one error naming the key, not a traceback or a table of
garbage columns.
"""

from pathlib import Path

import yaml

from ddag.errors import ConfigError
from ddag.evaluation.results import METRICS
from ddag.utils.arguments import closest

MAX_MANIFEST_BYTES = 1 << 20
FEATURES = ("FC", "FC_att", "feature")
TOP_KEYS = {
    "name": str,
    "title": str,
    "feature": str,
    "metrics": list,
    "rows": list,
    "smoke": bool,
    "published_elsewhere": list,
}
ROW_KEYS = {
    "preset": str,
    "protocol": str,
    "feature": str,
    "seeds": list,
    "trials": list,
    "paper": dict,
    "source": str,
}


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"{self.name}: line {mark.line + 1}: YAML aliases (*name) are not allowed in a "
                "table manifest; write the values out"
            )
        return super().compose_node(parent, index)


def load_manifest_file(path: Path) -> dict:
    """The checked manifest at `path`; ConfigError naming the problem otherwise."""
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ConfigError(f"{path} has {size} bytes; a table manifest has a few KB")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_PlainLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text ({err.reason})") from None
    except yaml.YAMLError as err:
        problem = " ".join(str(err).split())
        raise ConfigError(f"{path} is not a valid table manifest: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a table manifest") from None
    check_manifest(data, path)
    return data


def _check_keys(node: dict, schema: dict, where: str, required=()) -> None:
    for key in required:
        if key not in node:
            raise ConfigError(f"{where}: the key {key!r} is required")
    for key, value in node.items():
        if key not in schema:
            hint = closest(key, schema)
            raise ConfigError(
                f"{where}: unknown key {key!r}; a manifest {where.split(':')[-1].strip()} has "
                f"{sorted(schema)}" + (f"; did you mean {hint!r}?" if hint else "")
            )
        if not isinstance(value, schema[key]):
            raise ConfigError(f"{where}: {key} must be a {schema[key].__name__}, got {value!r:.60}")


def _numbers(values, what: str, where: str, kind=int) -> None:
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        name = "whole number" if kind is int else "number"
        raise ConfigError(f"{where}: {what} must be {name}s, got {values!r:.60}")


def check_manifest(data, path) -> None:
    """ConfigError unless `data` is a manifest: name, rows of preset/protocol and optional
    feature, metrics (of METRICS), seeds and trials (whole numbers) and paper numbers."""
    where = f"{path}: top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a table manifest is a mapping with name and rows")
    _check_keys(data, TOP_KEYS, where, required=("name", "rows"))
    if not data["rows"]:
        raise ConfigError(f"{where}: rows is empty")
    metrics = data.get("metrics", [])
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"{where}: metrics {unknown} are not among {list(METRICS)}")
    for number, row in enumerate(data["rows"], start=1):
        row_where = f"{path}: row {number}"
        if not isinstance(row, dict):
            raise ConfigError(f"{row_where}: a row is a mapping with preset and protocol")
        _check_keys(row, ROW_KEYS, row_where, required=("preset", "protocol"))
        _numbers(row.get("seeds", []), "seeds", row_where)
        _numbers(row.get("trials", []), "trials", row_where)
        paper = row.get("paper") or {}
        if set(paper) - set(METRICS):
            raise ConfigError(f"{row_where}: paper has {sorted(set(paper) - set(METRICS))}")
        _numbers(list(paper.values()), "paper values", row_where, (int, float))
    for feature in [data.get("feature")] + [r.get("feature") for r in data["rows"]]:
        if feature is not None and feature not in FEATURES:
            raise ConfigError(f"{path}: feature {feature!r} is not one of {list(FEATURES)}")
