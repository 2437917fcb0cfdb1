"""Layering rules: configuration stops at the composition root; no print() in the package."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ddag"
CONFIG_ALLOWED = ("config",)


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_hydra_and_omegaconf_only_in_config():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in CONFIG_ALLOWED:
            continue
        if any(name.split(".")[0] in ("hydra", "omegaconf") for name in _imports(path)):
            offenders.append(str(relative))
    assert not offenders, (
        "hydra/omegaconf imported outside ddag/config (tasks receive the typed Config of "
        f"ddag.config.run_config and a RunContext): {offenders}"
    )


def test_no_print_calls_in_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"use the logger instead of print: {offenders}"


def _package_imports(path):
    """Modules of ddag a file imports, `from ddag.tasks import common` as ddag.tasks.common."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("ddag"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ddag"):
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _violations(folders, forbidden, allowed=()):
    found = []
    for folder in folders:
        for path in (PACKAGE / folder).rglob("*.py"):
            for name in _package_imports(path):
                if name.startswith(forbidden) and not name.startswith(allowed):
                    found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


def test_models_and_engine_import_neither_tasks_nor_config():
    assert not _violations(("models", "engine"), ("ddag.tasks", "ddag.config"))


def test_no_task_imports_another_task():
    found = []
    for path in (PACKAGE / "tasks").glob("*.py"):
        for name in _package_imports(path):
            module = name.split(".")
            if module[:2] == ["ddag", "tasks"] and len(module) > 2:
                if module[2] not in ("steps", path.stem):
                    found.append(f"{path.name} imports {name}")
    assert not found, found


def test_one_package_owns_every_weight_file_and_models_read_none():
    # ddag/checkpoints: file formats, foreign readers, names, downloads, conversion, metadata and
    # the Checkpointer. Models only declare shapes and where weights belong.
    assert not (PACKAGE / "io").exists(), "file formats live in ddag/checkpoints"
    for gone in ("models/spec_check.py", "models/conversion.py", "checkpoints/store.py"):
        assert not (PACKAGE / gone).exists(), gone
    assert not _violations(("models",), ("ddag.checkpoints", "ddag.io", "ddag.data"))
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in (PACKAGE / "models").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.arg) and node.arg in ("pretrained", "pretrained_sha256")
    ]
    assert not offenders, f"models read no files: initial weights are init.weights: {offenders}"


def test_file_readers_are_leaves_of_the_checkpoint_package():
    leaves = ("format.py", "torch_files.py", "download.py", "weight_files.py", "names.py")
    allowed = ("ddag.errors", "ddag.utils", "ddag.checkpoints", "ddag.data.loader")
    for name in leaves:
        path = PACKAGE / "checkpoints" / name
        found = [n for n in _package_imports(path) if not n.startswith(allowed)]
        assert not found, (name, found)


def test_only_the_checkpoint_module_reads_or_writes_checkpoint_metadata():
    # CheckpointMeta is written and read by ddag.checkpoints.format alone; nothing else sees
    # the raw file functions or the keys inside the file.
    file_level = (
        "ddag.checkpoints.format.read_checkpoint_file",
        "ddag.checkpoints.format.write_checkpoint_file",
    )
    found = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "checkpoints"
        for name in _package_imports(path)
        if name in file_level or name.endswith((".META_KEY", ".DIGEST_KEY"))
    ]
    assert not found, found
    assert not (PACKAGE / "models" / "loading.py").exists()


def test_older_checkpoint_formats_are_known_in_one_place():
    # meta.upgrade brings every older file to today's keys; nobody else names a format version
    # or migrates a stored config.
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE) != Path("checkpoints/meta.py")
        and ("format_version" in path.read_text() or "def upgrade" in path.read_text())
    ]
    assert not offenders, offenders


def test_resume_reads_its_checkpoint_through_the_checkpointer():
    # The train task asks the Checkpointer for the resume point, the network and the optimiser
    # state; it loads no tensors itself.
    names = list(_package_imports(PACKAGE / "tasks" / "train.py"))
    assert not [n for n in names if n.startswith("ddag.checkpoints.format")], names
    assert not [n for n in names if n.startswith("ddag.checkpoints.network")], names
    assert not _violations(("config",), ("ddag.data.augmentations",))


def test_engine_loads_no_network_and_finds_no_protocol_by_hasattr():
    # The engine saves checkpoints (store) but never builds a network from one.
    assert not _violations(("engine",), ("ddag.checkpoints.network",))
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in (PACKAGE / "engine").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr"
    ]
    assert not offenders, (
        f"declare the contract (ObjectiveContract, Callback.state_key): {offenders}"
    )


def test_run_py_imports_only_config_errors_and_utils():
    runner = PACKAGE.parent / "run.py"
    names = [n for n in _package_imports(runner) if n.count(".") == 2 or n == "ddag.errors"]
    assert all(n.startswith(("ddag.config", "ddag.errors", "ddag.utils")) for n in names), names


def test_engine_imports_no_model_or_loss():
    # The trainer and step serve any network/objective pair (tests/test_engine.py trains a toy).
    assert not _violations(("engine",), ("ddag.models", "ddag.losses"))


def test_data_does_not_import_evaluation():
    # Datasets provide images; which protocols score them is configuration (eval/protocol).
    assert not _violations(("data",), ("ddag.evaluation",))


def test_tasks_are_written_in_named_steps_not_a_shared_hub():
    assert not (PACKAGE / "tasks" / "common.py").exists(), "put a shared step in ddag/tasks/steps/"
    for path in (PACKAGE / "tasks" / "steps").glob("*.py"):
        names = [n for n in _package_imports(path) if n.startswith("ddag.tasks.")]
        assert all(n.startswith("ddag.tasks.steps") for n in names), (path.name, names)


def test_tasks_cast_no_config_value():
    # The schema types every fixed key; a cast would hide a value the schema let through.
    offenders = []
    for path in (PACKAGE / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("int", "float", "str", "bool")
                and node.args
                and ast.unparse(node.args[0]).startswith(("config.", "cfg."))
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, f"config values are typed already: {offenders}"


def test_choices_and_ranges_live_on_the_schema_fields():
    import dataclasses

    from ddag.config import validate
    from ddag.config.schema import TASK_SCHEMAS, Config, TrainTask
    from ddag.utils.fields import field_rules

    assert not hasattr(validate, "CHOICES") and not hasattr(validate, "RANGES")
    assert field_rules(TrainTask)["selection"][0] == ("last", "val", "test")
    sections = [f.default_factory for f in dataclasses.fields(Config) if f.name != "task"]
    ruled = [s for s in sections if dataclasses.is_dataclass(s) and field_rules(s)]
    assert {s.__name__ for s in ruled} >= {"RuntimeSettings", "LoaderSettings", "EvalConfig"}
    assert sum(bool(field_rules(schema)) for schema in TASK_SCHEMAS.values()) >= 7


def test_training_and_benchmarks_build_the_step_through_one_factory():
    users = [
        path.relative_to(PACKAGE).as_posix()
        for path in (PACKAGE / "tasks").rglob("*.py")
        if "ddag.engine.step.make_train_step" in set(_package_imports(path))
    ]
    assert users == ["tasks/steps/training.py"], users


def test_the_objective_takes_the_loader_columns_first_then_its_declared_inputs():
    import inspect

    from ddag.data.loader import Batch
    from ddag.engine.trainer import ObjectiveContract
    from ddag.losses.objective import Objective

    params = list(inspect.signature(Objective.construct).parameters)[1:]
    assert params[: len(Batch._fields)] == list(Batch._fields)
    assert params[len(Batch._fields) :] == ["graph_weight", "noise", "active"]
    assert "state_key" in ObjectiveContract.__annotations__ and Objective.state_key == "objective"


def test_config_validation_has_one_path_for_every_component():
    # The model section is validated as every other `_target_` node; the allow-listed builder
    # of ddag.models.architecture serves specs read from files (and the network step's check
    # that what trains can be reloaded).
    assert not _violations(("config",), ("ddag.models.architecture",))


def test_which_gallery_entries_count_is_the_protocols_rule_not_a_string_switch():
    metrics = PACKAGE / "evaluation" / "metrics.py"
    compared = [
        node.lineno
        for node in ast.walk(ast.parse(metrics.read_text()))
        if isinstance(node, ast.Compare)
        and any(
            isinstance(c, ast.Constant) and c.value in ("sysu", "llcm", "regdb")
            for c in node.comparators
        )
    ]
    assert not compared, f"metrics.py compares protocol names at lines {compared}"
    assert "rule" in (PACKAGE / "evaluation" / "protocols.py").read_text()


def test_evaluation_scores_and_reporting_has_its_own_room():
    scoring = {
        "metrics",
        "protocols",
        "gallery_rules",
        "evaluator",
        "results",
        "rerank",
        "features",
        "onnx_engine",  # the features computed in another runtime
    }
    found = {p.stem for p in (PACKAGE / "evaluation").glob("*.py")} - {"__init__"}
    assert found <= scoring, f"not scoring: {sorted(found - scoring)} (ddag/reporting?)"
    assert not _violations(("evaluation",), ("ddag.reporting",))


def test_benchmark_library_lives_in_ddag_bench_and_tests_mirror_the_package():
    task = ast.parse((PACKAGE / "tasks" / "bench.py").read_text())
    defined = {n.name for n in task.body if isinstance(n, ast.FunctionDef)}
    assert not defined & {"bench_conv", "bench_metrics", "bench_data", "bench_inference"}
    tests = PACKAGE.parent / "tests"
    assert not (tests / "test_hardening.py").exists(), "a hardening case lives with its module"


def test_configs_composed_for_reading_point_outside_the_checkout():
    from tests.conftest import ROOT, compose_config

    output = Path(compose_config(["task=table"]).paths.output_dir).resolve()
    assert ROOT.resolve() not in output.parents and output != ROOT.resolve()
