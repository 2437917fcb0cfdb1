"""Layering rules: configuration stops at the composition root; no print() in the package."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ddag"
CONFIG_ALLOWED = ("config", "tasks")


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_hydra_and_omegaconf_only_in_config_and_tasks():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in CONFIG_ALLOWED:
            continue
        if any(name.split(".")[0] in ("hydra", "omegaconf") for name in _imports(path)):
            offenders.append(str(relative))
    assert not offenders, (
        f"hydra/omegaconf imported outside ddag/config and ddag/tasks: {offenders}"
    )


def test_no_print_calls_in_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"use the logger instead of print: {offenders}"
