"""Run folders and dataset roots (ddag/config/callbacks.py, ddag/utils/locks.py): a finished run,
a dataset root or a file is never overwritten; two preparations of one root do not race.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import threading

import numpy as np
import pytest

from ddag.config.run_config import run_config
from ddag.errors import ConfigError, DatasetError
from ddag.tasks.steps.runtime import output_dir
from tests.conftest import compose_config
from tests.test_run_cli import run_cli

# 15. A finished run, a dataset root or a file is never overwritten ---------------------------


def test_a_finished_run_dataset_root_or_file_is_refused_as_the_run_folder(tmp_path):
    finished = tmp_path / "finished"
    (finished / "checkpoints").mkdir(parents=True)
    (finished / "checkpoints" / "best.ckpt").write_bytes(b"last week's model")
    (finished / "results.json").write_text("[]")
    quick = ["task=prepare", "task.mode=check"]  # needs no preparation: returns at once
    refused = run_cli(*quick, f"hydra.run.dir={finished}")
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "already holds a run" in output, output[-2000:]
    assert "overwrite=true" in output and "task.resume=auto" in output
    assert (finished / "checkpoints" / "best.ckpt").read_bytes() == b"last week's model"
    assert not (finished / ".hydra").exists()
    dataset = tmp_path / "SYSU"
    for name in ("cam1", "cam3", "exp"):
        (dataset / name).mkdir(parents=True)
    refused = run_cli(*quick, f"hydra.run.dir={dataset}")
    assert refused.returncode == 1 and "is a dataset root" in refused.stdout + refused.stderr
    (tmp_path / "a_file").write_text("x")
    refused = run_cli(*quick, f"hydra.run.dir={tmp_path / 'a_file'}")
    assert refused.returncode == 1 and "is a file" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    allowed = run_cli(*quick, f"hydra.run.dir={finished}", "overwrite=true")
    assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-2000:]
    # The replaced run is set aside whole: no old checkpoint stands beside the new records.
    (aside,) = (finished / "replaced").iterdir()
    assert (aside / "checkpoints" / "best.ckpt").read_bytes() == b"last week's model"
    assert (aside / "results.json").is_file() and not (finished / "checkpoints").exists()
    assert f"was moved to {aside}" in allowed.stdout + allowed.stderr


def test_paths_output_dir_pointing_at_a_file_is_a_config_error(tmp_path):

    (tmp_path / "file").write_text("x")
    cfg = compose_config([], output_dir=tmp_path / "file")
    with pytest.raises(ConfigError, match="is a file"):
        output_dir(run_config(cfg))


# 16. Two preparations of one root ------------------------------------------------------------


def test_a_second_prepare_of_the_same_root_stops_instead_of_racing(tmp_path):
    from ddag.data.datasets.sysu import SYSUDataset
    from ddag.data.prepare import prepare_sysu, root_lock, save_atomic
    from tests.builders import sysu_tree

    root = sysu_tree(tmp_path / "SYSU")
    with root_lock(root):
        with pytest.raises(DatasetError, match="being prepared by another task=prepare"):
            prepare_sysu(SYSUDataset(str(root), height=32, width=16))
    # Temporary names are unique: writers of one file never share a temporary.
    target = tmp_path / "x.npy"
    threads = [
        threading.Thread(target=save_atomic, args=(target, np.full(1000, k))) for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert np.load(target).shape == (1000,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SYSU", "x.npy"]


def test_the_filesystem_root_and_home_are_refused_as_run_folders(tmp_path):
    from pathlib import Path

    from ddag.config.callbacks import place_refusal

    assert "filesystem root" in place_refusal(Path(tmp_path.anchor), "hydra.run.dir")
    assert "home folder" in place_refusal(Path.home(), "hydra.run.dir")
    assert place_refusal(tmp_path / "new-run", "hydra.run.dir") is None


def test_a_folder_of_files_no_run_wrote_is_refused_and_a_run_folder_is_not(tmp_path):
    from ddag.config.callbacks import LOCK_NAME, place_refusal

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("x")
    refusal = place_refusal(tmp_path / "notes", "hydra.run.dir")
    assert refusal and "thesis.tex" in refusal and "no ddag run wrote" in refusal
    (tmp_path / "empty").mkdir()
    assert place_refusal(tmp_path / "empty", "hydra.run.dir") is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text("pid 1")
    (tmp_path / "run" / "extra.txt").write_text("x")
    assert place_refusal(tmp_path / "run", "hydra.run.dir") is None


@pytest.mark.parametrize("record", ["features.npz", "visualize.json", "ranking.json", "ddag.onnx"])
def test_every_task_output_counts_as_a_finished_run(tmp_path, record):
    from ddag.config.callbacks import finished_run_refusal

    (tmp_path / record).write_text("x")
    refusal = finished_run_refusal(tmp_path, "hydra.run.dir", resuming=False, overwrite=False)
    assert refusal and record in refusal
    assert finished_run_refusal(tmp_path, "hydra.run.dir", resuming=False, overwrite=True) is None


def test_paths_output_dir_at_a_finished_run_is_refused_as_hydra_run_dir_is(tmp_path):
    from tests.test_run_cli import run_cli

    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "results.json").write_text("[]")
    result = run_cli(
        "+debug=fast", f"paths.output_dir={finished}", f"hydra.run.dir={tmp_path / 'new'}"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert f"paths.output_dir={finished} already holds a run (results.json)" in output
    assert (finished / "results.json").read_text() == "[]"


def test_a_single_run_and_a_live_sweep_never_share_a_job_folder(tmp_path):
    from ddag.config.callbacks import LOCK_NAME
    from ddag.utils.locks import try_lock

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    quick = ["task=prepare", "task.mode=check"]
    held, _ = try_lock(sweep / LOCK_NAME)  # the sweep's process, running its jobs
    try:
        single = run_cli(*quick, f"hydra.run.dir={sweep / '0'}")
    finally:
        held.close()
    output = single.stdout + single.stderr
    assert single.returncode == 1, output[-2000:]
    assert f"is in use by the live sweep in {sweep} (pid" in output
    assert not (sweep / "0" / ".hydra").exists()
    held, _ = try_lock(sweep / "0" / LOCK_NAME)  # now a single run lives in job folder 0
    try:
        swept = run_cli("-m", *quick, "seed=0,1", f"hydra.sweep.dir={sweep}")
    finally:
        held.close()
    output = swept.stdout + swept.stderr
    assert swept.returncode == 1 and f"{sweep / '0'} is in use by a live run (pid" in output
