"""Data-parallel training with msrun on two CPU worker processes."""

import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("msrun") is None, reason="msrun not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _msrun(args, log_dir, timeout=600):
    command = [
        "msrun",
        "--worker_num=2",
        "--local_worker_num=2",
        f"--master_port={_free_port()}",
        f"--log_dir={log_dir}",
        "--join=True",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.mark.slow
def test_one_step_matches_a_single_process_on_the_global_batch(tmp_path):
    script = str(ROOT / "tests" / "distributed_step.py")
    result = _msrun([script, str(tmp_path), "distributed"], tmp_path / "logs")
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("worker_*.log"))
    assert result.returncode == 0, logs[-3000:]
    single = subprocess.run(
        [sys.executable, script, str(tmp_path), "single"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    rank0, rank1 = np.load(tmp_path / "params_rank0.npz"), np.load(tmp_path / "params_rank1.npz")
    reference = np.load(tmp_path / "params_single0.npz")
    initial_changed = False
    for name in reference.files:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
        np.testing.assert_allclose(rank0[name], reference[name], rtol=1e-4, atol=1e-6, err_msg=name)
        initial_changed |= bool(np.any(reference[name] != 0))
    assert initial_changed


@pytest.mark.slow
def test_training_under_msrun_writes_one_run_directory_from_rank_0(tmp_path):
    run_dir = tmp_path / "run"
    result = _msrun(
        [
            "run.py",
            "+debug=fast",
            "runtime.mode=pynative",  # two steps: cheaper eagerly than compiled
            "runtime.jit_step=false",
            "runtime.distributed=true",
            "logger=tensorboard",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path / "logs",
    )
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("worker_*.log"))
    assert result.returncode == 0, logs[-3000:]
    assert "data parallel over 2 ranks" in logs
    assert (run_dir / "results.json").is_file() and (
        run_dir / "checkpoints" / "last.ckpt"
    ).is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert [p.name for p in run_dir.glob("*.log")] == ["run.log"]


def test_distributed_without_msrun_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "+debug=fast",
            "runtime.mode=pynative",  # two steps: cheaper eagerly than compiled
            "runtime.jit_step=false",
            "runtime.distributed=true",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "needs MindSpore's launcher" in result.stdout + result.stderr
