"""Training behaviour in-process on the tiny synthetic setting: determinism, resume, records.

Every graph-mode run compiles its step and inference graphs (~10 s here), so graph-mode runs
are few: one reference run, and one chain of interrupted and resumed runs compared with it.
Tests whose numbers are not compared with graph-mode runs train eagerly.
"""

import json
import os
import signal

import numpy as np
import pytest

from ddag.checkpoints.format import read_checkpoint
from ddag.config.run_config import run_config
from ddag.engine.callbacks import CheckpointSaver, ProgressLogger
from ddag.errors import Interrupted, TrainingError
from ddag.tasks import train
from tests.conftest import TINY, compose_config

# The reference run: 3 epochs, the model selected on the validation identities every epoch.
REFERENCE = ("task.epochs=3", "task.eval_every=1", "task.selection=val", "seed=3")
# No graph compilation, for runs whose numbers are not compared with graph-mode runs.
EAGER = ("runtime.mode=pynative", "runtime.jit_step=false")


def _train(root, name, *overrides):
    out = root / name
    cfg = compose_config(TINY + ["task.selection=last", *overrides], output_dir=out)
    summary = train.run(run_config(cfg))
    return summary, json.loads((out / "train_history.json").read_text()), out


def _records(out):
    return {
        (r["protocol"], r["feature"]): r for r in json.loads((out / "results.json").read_text())
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(summary, history, run dir) of the uninterrupted reference run."""
    return _train(tmp_path_factory.mktemp("reference"), "run", *REFERENCE)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One epoch of two steps without validation identities, asking for selection on val."""
    return _train(
        tmp_path_factory.mktemp("short"),
        "run",
        "task.epochs=1",
        "task.max_steps_per_epoch=2",
        "dataset.num_val_ids=0",
        "task.selection=val",
        "seed=5",
        *EAGER,
    )


def test_another_seed_gives_other_losses(tmp_path):
    # Same seed, same losses: the interrupted runs of the resume test repeat the reference run.
    one_step = ("task.epochs=1", "task.max_steps_per_epoch=1", "dataset.num_val_ids=0", *EAGER)
    _, three, _ = _train(tmp_path, "three", *one_step, "seed=3")
    _, four, _ = _train(tmp_path, "four", *one_step, "seed=4")
    assert three["epoch_losses"] != four["epoch_losses"]
    assert three["term_names"] == ["id", "triplet", "part", "graph"]


def test_run_writes_checkpoint_results_and_history(short_run):
    summary, history, out = short_run
    params, meta = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert meta.state["epoch"] == 1 and meta.state["step"] == 2
    assert "classifier.weight" in params and any(k.startswith("optimizer.") for k in params)
    assert set(summary) >= {"v2t/FC/rank1", "t2v/FC_att/mAP"}
    assert len(history["epoch_losses"]) == 1


def test_results_say_which_selection_was_done(short_run):
    # No validation identities: task.selection=val falls back to the last epoch, and says so.
    flags = _records(short_run[2])[("v2t", "FC_att")]["flags"]
    assert flags["selection"] == "last" and flags["requested_selection"] == "val"
    assert flags["selected_epoch"] == 1


def test_an_evaluated_checkpoint_fills_the_table_row_of_its_training_run(short_run, tmp_path):
    from ddag.reporting.tables import build_table, collect_runs
    from ddag.tasks import eval as eval_task

    out = short_run[2]
    cfg = compose_config(
        TINY
        + [
            "task=eval",
            f"task.checkpoint={out / 'checkpoints' / 'last.ckpt'}",
            "runtime.mode=pynative",
            "dataset.num_val_ids=0",  # the same test identities as the training run
        ],
        output_dir=tmp_path / "evaluated",
    )
    eval_task.run(run_config(cfg))
    manifest = {"name": "t", "rows": [{"preset": "default", "protocol": "v2t", "seeds": [5]}]}
    row = build_table(manifest, collect_runs([str(tmp_path / "evaluated")])["records"])["rows"][0]
    assert (row["runs"], row["missing"]) == (1, [])
    trained = _records(out)[("v2t", "FC_att")]["mean"]
    assert row["mean"]["rank1"] == pytest.approx(100 * trained["rank1"], abs=1e-4)


def test_non_finite_loss_stops_with_the_step_number(tmp_path):
    with pytest.raises(TrainingError, match=r"non-finite during epoch \d+/\d+, at step \d+"):
        _train(
            tmp_path,
            "nan",
            "task.epochs=3",
            "optimizer.lr=1e30",
            "schedule.warmup_epochs=0",
            *EAGER,
        )


@pytest.mark.slow
def test_interrupted_runs_resume_to_the_reference_run(reference, tmp_path, monkeypatch):
    """SIGTERM mid-epoch, then task.resume=auto stopped by Ctrl-C between an evaluation and its
    last.ckpt (best.ckpt is then newer than last.ckpt), then task.resume=auto to the end: the
    losses before the first stop, parameters, graph weight, selected epoch, best.ckpt, selection
    history and test numbers all equal the uninterrupted reference run's."""
    _, ref_history, ref_out = reference
    save, progress = CheckpointSaver.on_epoch_end, ProgressLogger.on_step_end
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"

    def sigterm_mid_epoch(self, trainer, state, losses):
        progress(self, trainer, state, losses)
        if state.step == trainer.steps_per_epoch + 2:  # epoch 1, step 2
            os.kill(os.getpid(), signal.SIGTERM)

    def ctrl_c_before_save(self, trainer, state):
        if state.epoch == 2:  # epoch 2 is evaluated (best.ckpt may be new), last.ckpt is not
            raise KeyboardInterrupt
        save(self, trainer, state)

    for target, patch, resume in (
        (ProgressLogger, ("on_step_end", sigterm_mid_epoch), ()),
        (CheckpointSaver, ("on_epoch_end", ctrl_c_before_save), ("task.resume=auto",)),
    ):
        monkeypatch.setattr(target, *patch)
        with pytest.raises(Interrupted, match="task.resume=auto") as stopped:
            _train(tmp_path, "run", *REFERENCE, *resume)
        monkeypatch.undo()
        assert str(last) in str(stopped.value)
        stopped_state = read_checkpoint(last)[1].state
        assert stopped_state["epoch"] == 1, patch[0]
        # Same seed, same run: the epoch before the stop has exactly the reference's losses.
        assert stopped_state["epoch_losses"] == ref_history["epoch_losses"][:1]

    # The bare command the interruption prints: the run's own settings come from its checkpoint.
    out = tmp_path / "run"
    train.run(run_config(compose_config(["task.resume=auto"], output_dir=out)))
    history = json.loads((out / "train_history.json").read_text())
    assert history["selection"] == ref_history["selection"]
    assert history["epoch_losses"][-1] == pytest.approx(ref_history["epoch_losses"][-1])
    for checkpoint in ("last.ckpt", "best.ckpt"):
        ours, meta = read_checkpoint(out / "checkpoints" / checkpoint)
        theirs, ref_meta = read_checkpoint(ref_out / "checkpoints" / checkpoint)
        assert set(ours) == set(theirs)
        assert meta.state["epoch"] == ref_meta.state["epoch"]
        weight = meta.state["components"]["objective"]["graph_weight"]
        assert weight == pytest.approx(ref_meta.state["components"]["objective"]["graph_weight"])
        for param in ours:
            np.testing.assert_allclose(
                ours[param].asnumpy(),
                theirs[param].asnumpy(),
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{checkpoint} {param}",
            )
    for key, record in _records(ref_out).items():
        resumed = _records(out)[key]
        assert resumed["flags"]["selection"] == "val"
        assert resumed["flags"]["selected_epoch"] == record["flags"]["selected_epoch"]
        assert resumed["mean"] == pytest.approx(record["mean"], abs=1e-6), key


@pytest.mark.parametrize("level", ["O2", "O3"])
def test_mixed_precision_trains_with_float32_heads_and_unchanged_names(tmp_path, level):
    summary, history, out = _train(
        tmp_path,
        level,
        "task.epochs=1",
        "task.max_steps_per_epoch=2",
        f"runtime.amp_level={level}",
        *EAGER,
    )
    assert np.isfinite(history["epoch_losses"][0]["total"])
    params, _ = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert "trunk.layer1.0.conv1.weight" in params and "classifier.weight" in params
    assert str(params["classifier.weight"].dtype) == "Float32"
    assert "v2t/FC_att/rank1" in summary


def test_a_last_selected_run_keeps_the_network_as_best_ckpt(tmp_path):
    import stat

    eager = ["runtime.mode=pynative", "runtime.jit_step=false", "task.selection=last"]
    train.run(run_config(compose_config(TINY + ["+debug=fast", *eager], output_dir=tmp_path)))
    best, _ = read_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    last, _ = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert best and not any(name.startswith("optimizer.") for name in best)
    assert any(name.startswith("optimizer.") for name in last)
    for name, value in best.items():
        np.testing.assert_array_equal(value.asnumpy(), last[name].asnumpy())
    mode = stat.S_IMODE((tmp_path / "checkpoints" / "best.ckpt").stat().st_mode)
    assert mode & stat.S_IRGRP
    records = json.loads((tmp_path / "results.json").read_text())
    assert records[0]["flags"]["checkpoint"].endswith("best.ckpt")


def test_a_stop_before_the_first_checkpoint_prints_the_starting_command(tmp_path, monkeypatch):
    from ddag.config.context import RunContext

    def ctrl_c(self, trainer, state, losses):
        raise KeyboardInterrupt

    monkeypatch.setattr(ProgressLogger, "on_step_end", ctrl_c)
    overrides = TINY + ["task.epochs=1", "seed=4", *EAGER]
    config = run_config(compose_config(overrides, output_dir=tmp_path / "run"))
    with pytest.raises(Interrupted, match="before its first checkpoint") as stopped:
        train.run(config, RunContext(tuple(overrides)))
    assert "task.resume=auto" not in str(stopped.value)
    assert "python run.py " + " ".join(overrides) in str(stopped.value)


def test_a_run_folder_stands_for_its_selected_model(tmp_path):
    import shutil

    from ddag.checkpoints.checkpointer import Checkpointer
    from tests.conftest import DATA

    (tmp_path / "checkpoints").mkdir()
    shutil.copy(DATA / "format_v2" / "last.ckpt", tmp_path / "checkpoints" / "best.ckpt")
    assert Checkpointer().load_network(tmp_path).report.ok


@pytest.mark.parametrize(
    "edit, problem",
    [
        ({"epoch": -5}, "cannot be negative"),
        ({"step": 10_000}, "past its 1 epoch"),
        ({"step": 1}, "the optimiser counted 2 steps, the loop 1"),
        ({"epoch": "one"}, "its loop state is unreadable"),
    ],
)
def test_a_resumed_loop_state_that_cannot_be_is_refused(tmp_path, edit, problem):
    """A checkpoint whose epoch or step was edited ended in numpy or MindSpore errors ("Gather
    index out of range"): it is refused as damaged, naming the file."""
    from mindspore import Parameter, Tensor

    from ddag.checkpoints.format import read_checkpoint_file, write_checkpoint_file
    from ddag.errors import CheckpointError

    eager = ["runtime.mode=pynative", "runtime.jit_step=false", "task.selection=last"]
    config = run_config(compose_config(TINY + ["+debug=fast", *eager], output_dir=tmp_path))
    train.run(config)
    last = tmp_path / "checkpoints" / "last.ckpt"
    params, meta = read_checkpoint_file(last)
    meta["state"].update(edit)

    class Holder:
        def get_parameters(self):
            return [Parameter(Tensor(p.asnumpy()), name=name) for name, p in params.items()]

    write_checkpoint_file(last, Holder(), None, meta)
    (tmp_path / "results.json").unlink()  # not a finished, tested run: resuming goes on
    resumed = compose_config(
        TINY + ["+debug=fast", *eager, "task.resume=auto", "task.epochs=2"], output_dir=tmp_path
    )
    with pytest.raises(CheckpointError, match=problem):
        train.run(run_config(resumed))


def test_resuming_a_finished_and_tested_run_says_so_and_does_nothing(tmp_path, caplog):
    eager = ["runtime.mode=pynative", "runtime.jit_step=false", "task.selection=last"]
    first = train.run(run_config(compose_config(TINY + ["+debug=fast", *eager], tmp_path)))
    results = (tmp_path / "results.json").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        again = train.run(run_config(compose_config(["task.resume=auto"], output_dir=tmp_path)))
    assert again == first and (tmp_path / "results.json").stat().st_mtime_ns == results
    assert "is finished (epoch 1 of 1) and tested (results.json): nothing to do" in caplog.text
