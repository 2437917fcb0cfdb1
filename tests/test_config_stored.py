"""A run configuration stored in a checkpoint is data (ddag/config/stored.py): resuming from a
crafted file runs none of the code its `_target_`s name, and a planted lock link is refused."""

import json
import os
import shutil
import subprocess
import sys

import mindspore as ms
import pytest

from ddag.checkpoints.format import DIGEST_KEY, META_KEY, parameter_digest, read_checkpoint_file
from ddag.config.context import RunContext
from ddag.config.run_config import run_config
from ddag.config.stored import check_stored_config, project_targets
from ddag.errors import ConfigError
from ddag.tasks import train
from ddag.utils.locks import UnsafeLockFile, try_lock
from tests.conftest import DATA, ROOT, compose_config


def _crafted_checkpoint(path, edit):
    """The format-2 test checkpoint with its stored run config changed by `edit(config)`."""
    params, meta = read_checkpoint_file(DATA / "format_v2" / "last.ckpt")
    edit(meta["config"])
    entries = [{"name": n, "data": p} for n, p in params.items()]
    digest = parameter_digest((n, p.asnumpy()) for n, p in params.items())
    ms.save_checkpoint(
        entries, str(path), append_dict={META_KEY: json.dumps(meta), DIGEST_KEY: digest}
    )
    return path


def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    return victim


CASES = {
    "open": lambda v: (
        "loader.augment.evil",
        {"_target_": "builtins.open", "file": v, "mode": "w"},
    ),
    "copyfile": lambda v: (
        "loader.augment.evil",
        {"_target_": "shutil.copyfile", "src": "/etc/hostname", "dst": v},
    ),
    "protocol": lambda v: ("eval.protocol.evil", {"_target_": "os.makedirs", "name": v + ".d"}),
    "import": lambda v: ("loader.augment.evil", {"_target_": "this.s"}),
    "args": lambda v: ("loader.augment.pad_crop_flip._args_", [v]),
}


def _put(config, dotted, value):
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_checkpoint_config_runs_no_code(case, tmp_path):
    victim = _victim(tmp_path)
    key, value = CASES[case](str(victim))
    checkpoint = _crafted_checkpoint(tmp_path / "shared.ckpt", lambda c: _put(c, key, value))
    overrides = ["+debug=fast", "model.low_dim=16", f"task.resume={checkpoint}"]
    config = run_config(compose_config(overrides, output_dir=tmp_path / "new"))
    with pytest.raises(ConfigError, match="nothing was imported or run") as refused:
        train.run(config, RunContext(tuple(overrides)))
    assert key.split("._args_")[0] in str(refused.value)
    assert victim.read_text() == "precious" and not os.path.exists(str(victim) + ".d")
    assert "this" not in sys.modules or case != "import"


def test_the_import_target_is_refused_before_python_imports_it(tmp_path):
    """In a fresh process: the `this` module prints the Zen of Python when imported."""
    checkpoint = _crafted_checkpoint(
        tmp_path / "zen.ckpt", lambda c: _put(c, "loader.augment.evil", {"_target_": "this.s"})
    )
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "+debug=fast",
            "model.low_dim=16",
            f"task.resume={checkpoint}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "nothing was imported or run" in result.stdout + result.stderr
    assert "Beautiful is better than ugly" not in result.stdout + result.stderr


def test_the_project_targets_and_an_honest_stored_config_pass(tmp_path):
    assert "ddag.models.ddag.DDAG" in project_targets()
    assert "ddag.data.augmentations.pad_crop_flip.PadCropFlip" in project_targets()
    checkpoint = _crafted_checkpoint(tmp_path / "honest.ckpt", lambda c: None)
    _, meta = read_checkpoint_file(checkpoint)
    check_stored_config(meta["config"], "honest.ckpt")
    with pytest.raises(ConfigError, match="nested more than"):
        deep = {}
        node = deep
        for _ in range(100):
            node["a"] = {}
            node = node["a"]
        check_stored_config(deep, "deep.ckpt")


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    victim = _victim(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".ddag.lock").symlink_to(victim)
    with pytest.raises(UnsafeLockFile, match="symbolic link"):
        try_lock(run_dir / ".ddag.lock")
    assert victim.read_text() == "precious"
    result = subprocess.run(
        [sys.executable, "run.py", "task=score", "task.features=x.npz", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "symbolic link" in result.stdout + result.stderr
    assert victim.read_text() == "precious"
    (run_dir / ".ddag.lock").unlink()
    shutil.rmtree(run_dir)
