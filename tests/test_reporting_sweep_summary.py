"""A multirun's summary: mean ± std over the jobs that differ only in seed / RegDB trial."""

import json

import pytest

from ddag.config.callbacks import finished_jobs
from ddag.evaluation.results import METRICS
from ddag.reporting.sweep_summary import setting_of, summarize, summary_markdown, write_summary


def _record(protocol, rank1):
    mean = {m: 0.5 for m in METRICS}
    mean["rank1"] = rank1
    return {"protocol": protocol, "feature": "FC_att", "mean": mean}


def _job(root, name, overrides, rank1s):
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    records = [_record(p, r) for p, r in zip(("v2t", "t2v"), rank1s)]
    (folder / "results.json").write_text(json.dumps(records))


def test_jobs_that_differ_in_seed_and_trial_are_one_setting(tmp_path):
    _job(tmp_path, "0", ["seed=0", "optimizer.lr=0.05"], (0.50, 0.40))
    _job(tmp_path, "1", ["seed=1", "optimizer.lr=0.05", "dataset.trial=2"], (0.70, 0.60))
    _job(tmp_path, "2", ["seed=0", "optimizer.lr=0.1"], (0.90, 0.80))
    (tmp_path / "3").mkdir()  # a failed job: no results.json
    summary = summarize(finished_jobs(tmp_path))
    assert [g["setting"] for g in summary] == ["optimizer.lr=0.05", "optimizer.lr=0.1"]
    v2t = summary[0]["rows"][0]
    assert v2t["protocol"] == "v2t" and v2t["runs"] == 2
    assert v2t["mean"]["rank1"] == pytest.approx(0.60)
    assert v2t["std"]["rank1"] == pytest.approx(0.1414213562)  # sample std of 0.5 and 0.7
    single = summary[1]["rows"][1]
    assert single["runs"] == 1 and single["std"]["rank1"] == 0.0
    text = summary_markdown(summary)
    assert "| v2t | FC_att | 2 | 60.00 ± 14.14 |" in text
    paths = write_summary(summary, tmp_path, ["sweep/3: ConfigError: optimizer.lr=-1"])
    document = json.loads(paths[0].read_text())
    assert document["groups"] == summary and document["std"] == "sample, ddof=1"
    assert document["failed"] == ["sweep/3: ConfigError: optimizer.lr=-1"]
    written = paths[1].read_text()
    assert written.startswith(text.rstrip("\n")) and "Failed jobs (1)" in written
    assert "sweep/3: ConfigError" in written and "sample std (ddof=1)" in text


def test_the_setting_leaves_out_only_the_repetition_keys():
    assert setting_of(["seed=3", "+debug=smoke", "dataset.trial=1"]) == "+debug=smoke"
    assert setting_of(["seed=3"]) == "(defaults)"
