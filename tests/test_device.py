"""The GPU or Ascend path on a machine that has the device: `DDAG_DEVICE=GPU python -m pytest
tests/test_device.py` (or Ascend). Skipped everywhere else; ddag's CI has no device.

Runs the default job on the device, one paper-size (ResNet-50, 288x144) train step on the device
and on the CPU from the same seed, comparing their losses, and an evaluation of the device
run's checkpoint.
"""

import json
import os
import subprocess
import sys

import pytest

from ddag.engine.device_check import device_problems
from tests.conftest import ROOT

DEVICE = os.environ.get("DDAG_DEVICE", "")
RUNTIME = {"GPU": "runtime=gpu", "Ascend": "runtime=ascend"}.get(DEVICE)

pytestmark = [
    pytest.mark.device,
    pytest.mark.slow,
    pytest.mark.skipif(RUNTIME is None, reason="set DDAG_DEVICE=GPU or Ascend on such a machine"),
]


def _run(*args, timeout=3600):
    result = subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_the_device_is_set_up_as_ddag_checks_it():
    assert device_problems(DEVICE) == []


def test_the_default_job_trains_and_beats_chance_on_the_device(tmp_path):
    _run(RUNTIME, f"hydra.run.dir={tmp_path}")
    records = json.loads((tmp_path / "results.json").read_text())
    assert all(r["mean"]["rank1"] > 3 / 12 for r in records if r["feature"] == "FC_att")
    _run(
        RUNTIME,
        "task=eval",
        f"task.checkpoint={tmp_path}/checkpoints/best.ckpt",
        f"hydra.run.dir={tmp_path}/eval",
    )
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert [r["mean"]["rank1"] for r in evaluated] == pytest.approx(
        [r["mean"]["rank1"] for r in records], abs=0.02
    )


def test_one_paper_size_step_gives_the_cpu_loss(tmp_path):
    step = [
        "model/backbone=resnet50",
        "loader=paper",
        "task.epochs=1",
        "task.selection=last",
        "task.max_steps_per_epoch=1",
        "runtime.deterministic=true",
        "logger=none",
        "seed=0",
    ]
    losses = {}
    for name, runtime in (("cpu", "runtime=cpu"), ("device", RUNTIME)):
        _run(runtime, *step, f"hydra.run.dir={tmp_path / name}")
        history = json.loads((tmp_path / name / "train_history.json").read_text())
        losses[name] = history["epoch_losses"][0]
    for term, value in losses["cpu"].items():
        assert losses["device"][term] == pytest.approx(value, rel=2e-2), term
