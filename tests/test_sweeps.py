"""hydra/sweeper=optuna: trials ask Optuna, each job's validation metric is told back, the best
is reported, and every job lands in TensorBoard's HParams dashboard."""

from types import SimpleNamespace

import pytest
import yaml
from hydra.core.utils import JobStatus

from ddag.config.optuna_search import OptunaSearch, _objective_value
from ddag.errors import ConfigError
from tests.conftest import TINY
from tests.test_run_cli import run_cli

SHORT = [o for o in TINY if not o.startswith("logger")] + [
    "task.epochs=1",
    "task.max_steps_per_epoch=2",
    "task.eval_every=1",
    "runtime.mode=pynative",
    "runtime.jit_step=false",
]


@pytest.mark.slow
def test_optuna_sweep_tunes_lr_and_margin_on_the_validation_metric(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.seed=1",
        "optimizer.lr=tag(log,interval(0.01,0.2))",
        "loss.triplet.margin=choice(0.1,0.3,0.5)",
        *SHORT,
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert [t["state"] for t in report["trials"]] == ["COMPLETE", "COMPLETE"]
    values = [t["value"] for t in report["trials"]]
    assert report["best_value"] == max(values) and 0 <= max(values) <= 100  # percent
    for trial, job in zip(report["trials"], ("0", "1")):
        overrides = yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
        assert f"loss.triplet.margin={trial['params']['loss.triplet.margin']}" in overrides
        assert 0.01 <= trial["params"]["optimizer.lr"] <= 0.2
        # The job's HParams record names its hyper-parameters and its validation metric.
        events = b"".join(
            p.read_bytes() for p in (sweep / job / "tensorboard" / "hparams").iterdir()
        )
        assert b"optimizer.lr" in events and b"hparam/val/rank1" in events


def test_a_failed_or_silent_job_is_a_failed_trial_and_a_search_needs_dimensions():
    done = SimpleNamespace(status=JobStatus.COMPLETED, return_value={"val/rank1": 0.5})
    failed = SimpleNamespace(status=JobStatus.FAILED, return_value=None)
    silent = SimpleNamespace(status=JobStatus.COMPLETED, return_value=None)
    assert _objective_value(done, "val/rank1") == 50.0  # percent, as tables show it
    assert _objective_value(failed, "val/rank1") is None
    assert _objective_value(silent, "val/rank1") is None
    assert _objective_value(done, "val/mAP") is None
    with pytest.raises(ConfigError, match="nothing to search"):
        OptunaSearch()._split(["task.epochs=2"])
    dimensions, fixed = OptunaSearch(params={"seed": "range(0,3)"})._split(["task.epochs=2"])
    assert dimensions == {"seed": ("categorical", [0, 1, 2])} and fixed == ["task.epochs=2"]
    with pytest.raises(ConfigError, match="direction"):
        OptunaSearch(direction="up")
