"""Presets, sweeps and tables."""

import functools
import json
import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep
from omegaconf import OmegaConf

from ddag.config.run_config import run_config
from ddag.config.validate import validate_config
from ddag.evaluation.results import ResultRecord, write_records
from ddag.reporting.tables import build_table, collect_runs, table_csv, table_markdown
from ddag.tasks import table as table_task
from tests.conftest import CONF, ROOT, compose_config
from tests.test_run_cli import run_cli

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
MANIFESTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_validates(preset, tmp_path):
    cfg = compose_config([f"experiment={preset}"], output_dir=tmp_path)
    assert cfg.name == preset
    validate_config(OmegaConf.to_container(cfg, resolve=True))
    smoke = compose_config([f"experiment={preset}", "+debug=smoke"], output_dir=tmp_path)
    assert smoke.name == preset and smoke.dataset._target_.endswith("SyntheticDataset")


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_names_existing_presets_and_protocols(name):
    manifest = table_task.load_manifest(name)
    for row in manifest["rows"]:
        assert row["preset"] in PRESETS
        if manifest.get("smoke"):
            protocols = ["v2t", "t2v"]  # the synthetic dataset's own
        else:
            protocols = list(compose_config([f"experiment={row['preset']}"]).eval.protocol)
        assert any(p.endswith(row["protocol"]) for p in protocols), (row, protocols)


def _record(name, protocol, rank1, mAP, seed=0, trial=None, feature="FC_att"):
    return ResultRecord(
        protocol=protocol,
        fingerprint={},
        feature=feature,
        flags={},
        identity={"name": name, "seed": seed, "trial": trial},
        trials=[{"rank1": rank1, "mAP": mAP, "mINP": 0.1}],
        cmc=[rank1],
    )


def test_table_means_stds_differences_and_missing_runs():
    manifest = {
        "name": "t",
        "metrics": ["rank1", "mAP"],
        "rows": [
            {
                "preset": "a",
                "protocol": "v2t",
                "seeds": [0],
                "trials": [1, 2, 3],
                "paper": {"rank1": 50.0},
                "source": "paper",
            },
            {"preset": "b", "protocol": "sysu_all", "seeds": [0, 1]},
        ],
    }
    records = [
        (_record("a", "v2t", 0.40, 0.30, trial=1), "r1"),
        (_record("a", "v2t", 0.60, 0.50, trial=2), "r2"),
        (_record("a", "t2v", 0.99, 0.99, trial=3), "r3"),  # other protocol: not this row
        (_record("a", "v2t", 0.99, 0.99, trial=3, feature="FC"), "r4"),  # other feature
        (_record("b", "sysu_all", 0.20, 0.10, seed=1), "r5"),
    ]
    table = build_table(manifest, records)
    a, b = table["rows"]
    assert (a["runs"], a["expected"], a["missing"]) == (2, 3, ["seed 0, trial 3"])
    assert a["mean"]["rank1"] == pytest.approx(50.0) and a["std"]["rank1"] == pytest.approx(
        14.1421356
    )
    assert a["mean"]["mAP"] == pytest.approx(40.0) and a["diff"] == {"rank1": pytest.approx(0.0)}
    assert (b["runs"], b["missing"]) == (1, ["seed 0"])
    assert b["mean"]["rank1"] == pytest.approx(20.0) and b["std"]["rank1"] == 0.0
    markdown = table_markdown(table)
    assert "50.00 ± 14.14 (50.00, +0.00)" in markdown and "Missing runs:" in markdown
    assert "- a: seed 0, trial 3" in markdown
    assert "Failed jobs" not in markdown
    table["failed_jobs"] = ["sweep/1"]
    assert "Failed jobs (see their logs): sweep/1" in table_markdown(table)
    assert (
        table_csv(table)
        .splitlines()[1]
        .startswith("a,v2t,FC_att,2,3,50.0,14.142135623730951,50.0,0.0")
    )


def test_collect_runs_reads_results_and_failed_jobs(tmp_path):
    write_records([_record("a", "v2t", 0.5, 0.5)], tmp_path / "sweep" / "0" / "results.json")
    (tmp_path / "sweep" / "1").mkdir()
    (tmp_path / "sweep" / "1" / "FAILED").write_text("DatasetError: ...")
    found = collect_runs([str(tmp_path / "sweep")])
    assert len(found["records"]) == 1 and found["failed"] == [str(tmp_path / "sweep" / "1")]


@pytest.mark.slow
def test_smoke_variants_of_all_presets_run_in_one_multirun_and_make_a_table(tmp_path):
    sweep = tmp_path / "sweep"
    # One step per preset is enough to show that each one trains, evaluates and is tabled.
    result = run_cli(
        "-m",
        "experiment=glob(*)",
        "+debug=smoke",
        "task.max_steps_per_epoch=1",
        "task.selection=last",  # the test split is evaluated; no validation pass per preset
        # Hydra's basic launcher: the jobs run one after another in one process (MindSpore is
        # imported once; the parallel launcher is tested below).
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not list(sweep.rglob("FAILED"))
    names = {json.loads(p.read_text())[0]["identity"]["name"] for p in sweep.rglob("results.json")}
    assert names == set(PRESETS)
    manifest = tmp_path / "smoke.yaml"
    manifest.write_text(
        "name: smoke\nsmoke: true\nmetrics: [rank1, mAP]\nrows:\n"
        + "".join(f"  - {{preset: {p}, protocol: v2t, seeds: [0]}}\n" for p in PRESETS)
    )
    out = tmp_path / "table"
    result = run_cli(
        "task=table",
        f"task.table={manifest}",
        f"task.runs=[{sweep}]",
        f"task.results_dir={out}",
        f"hydra.run.dir={tmp_path / 'table_run'}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = json.loads((out / "smoke.json").read_text())
    assert all(row["runs"] == 1 and not row["missing"] for row in table["rows"])
    assert (out / "smoke.md").is_file() and (out / "smoke.csv").is_file()


@pytest.mark.slow
def test_a_failing_job_does_not_stop_a_parallel_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    # Two jobs in parallel (joblib); the RegDB one fails at start-up: its root does not exist.
    result = run_cli(
        "-m",
        "dataset=regdb,synthetic",
        "+debug=fast",
        "runtime.mode=pynative",
        "runtime.jit_step=false",
        f"hydra.sweep.dir={sweep}",
        "paths.data_root=" + str(tmp_path / "no_data"),
        "hydra/launcher=local_parallel",
    )
    output = result.stdout + result.stderr
    # The other job finishes; the sweep still ends with status 1 so that scripts notice.
    assert result.returncode == 1 and "1 job(s) of the sweep failed" in output, output[-2000:]
    assert (sweep / "0" / "FAILED").is_file()
    assert "RegDB root not found" in (sweep / "0" / "FAILED").read_text()
    assert (sweep / "1" / "results.json").is_file()
    assert Path(sweep / "multirun.yaml").is_file()
    # The finished job is summarised and the failed one listed beside it, before the exit.
    summary = json.loads((sweep / "summary.json").read_text())
    assert len(summary["groups"]) == 1 and summary["groups"][0]["jobs"] == [str(sweep / "1")]
    assert len(summary["failed"]) == 1 and "RegDB root not found" in summary["failed"][0]


def test_slurm_launcher_config_composes():
    result = run_cli("hydra/launcher=slurm", "--cfg", "hydra", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SlurmLauncher" in result.stdout and "gpus_per_node: 1" in result.stdout


# README examples that show the error a typo gives, not a command to run.
ERROR_EXAMPLES = {"+model.part_attention.num_partss=3"}


def _documented_commands():
    """`python run.py ...` commands of the READMEs as argument lists (no placeholders, flags)."""
    commands = []
    for doc in (ROOT / "README.md", ROOT / "experiments" / "README.md"):
        text = doc.read_text().replace("\\\n", " ")  # join continued lines
        for found in re.findall(r"python run\.py (?:-m )?([^`\n#]+)", text):
            args = shlex.split(found)
            placeholder = ("..." in a or "<" in a or a.startswith("--") for a in args)
            if args and not any(placeholder) and not ERROR_EXAMPLES & set(args):
                commands.append(args)
    return commands


def _sweep_values(override):
    """Every value a sweep override expands to, as the basic sweeper and glob would."""
    value = override.value()
    if isinstance(value, Glob):
        group = CONF / override.key_or_group
        return value.filter(sorted(p.stem for p in group.glob("*.yaml")))
    if isinstance(value, IntervalSweep):  # an Optuna search range: both ends must compose
        cast = int if "int" in value.tags else float
        return [str(cast(value.start)), str(cast(value.end))]
    if override.is_sweep_override():
        assert not any(isinstance(v, Glob) for v in getattr(value, "list", [])), (
            f"{override.input_line}: Hydra cannot expand glob() inside a list; "
            "give glob a list of patterns instead"
        )
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


@pytest.mark.parametrize("args", _documented_commands(), ids=" ".join)
def test_documented_commands_expand_to_configs_that_compose(args):
    overrides = [
        o
        for o in OverridesParser.create().parse_overrides(args)
        if not o.key_or_group.startswith("hydra")
    ]
    assert overrides
    sweeps = {o.get_key_element(): _sweep_values(o) for o in overrides}
    assert all(sweeps.values()), sweeps
    first = {key: values[0] for key, values in sweeps.items()}
    for key, values in sweeps.items():
        for value in values:
            job = {**first, key: value}
            _composes_and_validates(tuple(f"{k}={v}" for k, v in job.items()))


@functools.cache
def _composes_and_validates(overrides: tuple) -> None:
    """Compose and validate one job's config; a job several commands share is checked once."""
    validate_config(OmegaConf.to_container(compose_config(overrides), resolve=True))


def test_a_table_without_runs_shows_the_paper_numbers_marked_missing(tmp_path):
    from ddag.tasks import table
    from tests.conftest import compose_config

    cfg = compose_config(
        ["task=table", "task.table=ddag_regdb", f"task.results_dir={tmp_path}"],
        output_dir=tmp_path,
    )
    summary = table.run(run_config(cfg))
    assert summary["missing"] > 0
    text = (tmp_path / "ddag_regdb.md").read_text()
    assert "missing (paper " in text and "Missing runs:" in text


def test_a_missing_run_folder_is_an_error_and_a_table_file_is_found_from_anywhere(
    tmp_path, monkeypatch
):
    from ddag.errors import ConfigError
    from ddag.tasks import table
    from tests.conftest import compose_config

    typo = ["task=table", "task.table=ddag_regdb", f"task.runs=[{tmp_path / 'multirn'}]"]
    with pytest.raises(ConfigError, match="do not exist"):
        table.run(run_config(compose_config(typo, output_dir=tmp_path)))
    monkeypatch.chdir(tmp_path)  # outside the clone: experiments/x.yaml still names the manifest
    assert table.load_manifest("experiments/smoke_example.yaml")["name"] == "smoke_example"
    with pytest.raises(ConfigError, match="table file not found"):
        table.load_manifest("nowhere/none.yaml")
    with pytest.raises(ConfigError, match="unknown table 'ddag_regbd'"):
        table.load_manifest("ddag_regbd")


def test_a_table_leaves_out_runs_that_are_not_their_preset_and_names_the_keys(tmp_path):
    """Runs of experiment=ddag_regdb_v2t with another backbone and a 2-step epoch are listed
    with what differs and left out of the row; task.allow_modified counts them, marked."""
    manifest = {
        "name": "t",
        "metrics": ["rank1"],
        "rows": [
            {"preset": "ddag_regdb_v2t", "protocol": "v2t", "seeds": [0], "trials": [1, 2]},
        ],
    }
    records = []
    for trial, extra in ((1, []), (2, ["model/backbone=tiny", "+debug=fast"])):
        folder = tmp_path / f"run{trial}"
        (folder / ".hydra").mkdir(parents=True)
        composed = compose_config(
            ["experiment=ddag_regdb_v2t", f"dataset.trial={trial}", *extra], output_dir=folder
        )
        (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(composed))
        record = _record("ddag_regdb_v2t", "v2t", 0.5 + trial / 10, 0.4, trial=trial)
        records.append((record, str(folder)))
    table = build_table(manifest, records, table_task.PresetCheck())
    (row,) = table["rows"]
    assert row["runs"] == 1 and row["missing"] == ["seed 0, trial 2"]
    (changed,) = row["modified"]
    assert changed["run"] == str(tmp_path / "run2")
    text = " ".join(changed["differences"])
    assert "task.max_steps_per_epoch: None -> 2" in text and "model.backbone.layers" in text
    markdown = table_markdown(table)
    assert "differ from their preset (left out; task.allow_modified=true" in markdown
    allowed = build_table(manifest, records, table_task.PresetCheck(), allow_modified=True)
    assert allowed["rows"][0]["runs"] == 2 and allowed["rows"][0]["includes_modified"]
    assert "ddag_regdb_v2t (modified runs)" in table_markdown(allowed)
