"""task=table: build a paper table from finished runs (never retrains)."""

from pathlib import Path

from ddag.config.context import RunContext
from ddag.config.presets import differences, preset_settings, run_settings
from ddag.config.schema import Config
from ddag.errors import ConfigError
from ddag.reporting.manifests import load_manifest_file
from ddag.reporting.tables import build_table, collect_runs, table_markdown, write_table
from ddag.tasks.steps.runtime import output_dir
from ddag.utils.logging import get_logger

log = get_logger(__name__)
MANIFESTS = Path(__file__).resolve().parents[2] / "experiments"


def load_manifest(name: str) -> dict:
    """A table manifest by name (experiments/<name>.yaml, from any folder) or by file path."""
    available = sorted(p.stem for p in MANIFESTS.glob("*.yaml"))
    if name.endswith(".yaml"):
        path = Path(name)
        if not path.is_file() and (MANIFESTS / path.name).is_file():
            path = MANIFESTS / path.name  # experiments/x.yaml written from outside the clone
        if not path.is_file():
            raise ConfigError(f"table file not found: {name}; or give a name of {available}")
        return load_manifest_file(path)
    path = MANIFESTS / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown table {name!r}; available: {available}")
    return load_manifest_file(path)


class PresetCheck:
    """`modified_by` of build_table: a run's recorded settings against its preset's, each
    composed once."""

    def __init__(self):
        self._presets, self._runs = {}, {}

    def __call__(self, preset: str, seed: int, trial, run_dir: str) -> list:
        if run_dir not in self._runs:
            self._runs[run_dir] = run_settings(run_dir)
        ran = self._runs[run_dir]
        if ran is None:
            log.warning("%s records no .hydra/config.yaml: its settings are not checked", run_dir)
            return []
        key = (preset, seed, trial)
        if key not in self._presets:
            try:
                self._presets[key] = preset_settings(preset, seed, trial)
            except Exception as err:  # a preset renamed or removed since the run
                log.warning("preset %s does not compose (%s): runs not checked", preset, err)
                self._presets[key] = None
        wanted = self._presets[key]
        return [] if wanted is None else differences(ran, wanted)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    task = config.task
    if not task.table:
        raise ConfigError("task=table needs task.table=NAME (a file in experiments/)")
    manifest = load_manifest(task.table)
    if not task.runs:
        log.warning(
            "no task.runs=[DIR,...] given: the table shows the paper's numbers, every run missing"
        )
    absent = [str(p) for p in task.runs if not Path(p).exists()]
    if absent:
        raise ConfigError(
            f"task.runs names run folders that do not exist: {absent}; give the folders of "
            "finished runs or sweeps (outputs/<date>/<time>, multirun/<date>/<time>)"
        )
    found = collect_runs([str(p) for p in task.runs])
    allow = bool(task.allow_modified or manifest.get("smoke"))
    table = build_table(manifest, found["records"], PresetCheck(), allow)
    table["failed_jobs"] = found["failed"]
    folder = Path(task.results_dir) if task.results_dir else output_dir(config)
    paths = write_table(table, folder)
    log.info(
        "table %s from %d records, written to %s\n%s",
        manifest["name"],
        len(found["records"]),
        ", ".join(map(str, paths)),
        table_markdown(table),
    )
    return {"rows": len(table["rows"]), "missing": sum(len(r["missing"]) for r in table["rows"])}
