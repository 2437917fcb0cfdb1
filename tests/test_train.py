"""Training behaviour in-process on the tiny synthetic setting: determinism, failure messages."""

import json

import numpy as np
import pytest

from ddag.engine.callbacks import ProgressLogger
from ddag.engine.checkpoint import read_checkpoint
from ddag.errors import Interrupted, TrainingError
from ddag.tasks import train
from tests.conftest import TINY, compose_config


def _train(tmp_path, name, *overrides):
    out = tmp_path / name
    cfg = compose_config(TINY + ["task.selection=last", *overrides], output_dir=out)
    summary = train.run(cfg)
    return summary, json.loads((out / "train_history.json").read_text()), out


def test_same_seed_gives_identical_losses_and_other_seed_does_not(tmp_path):
    _, first, _ = _train(tmp_path, "a", "task.epochs=2")
    _, second, _ = _train(tmp_path, "b", "task.epochs=2")
    _, other, _ = _train(tmp_path, "c", "task.epochs=2", "seed=1")
    assert first["epoch_losses"] == second["epoch_losses"]
    assert first["epoch_losses"] != other["epoch_losses"]
    # The graph term only counts from the second epoch, with w_G = 1 / (1 + mean instance loss).
    assert first["term_names"] == ["id", "triplet", "part", "graph"]


def test_run_writes_checkpoint_results_and_history(tmp_path):
    summary, history, out = _train(tmp_path, "run", "task.epochs=1", "task.max_steps_per_epoch=2")
    params, meta = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert meta["state"]["epoch"] == 1 and meta["state"]["step"] == 2
    assert "classifier.weight" in params and any(k.startswith("optimizer.") for k in params)
    assert (out / "results.json").is_file()
    assert set(summary) >= {"v2t/FC/rank1", "t2v/FC_att/mAP"}
    assert len(history["epoch_losses"]) == 1


def test_non_finite_loss_stops_with_the_step_number(tmp_path):
    with pytest.raises(TrainingError, match=r"non-finite at epoch \d+, step \d+"):
        _train(tmp_path, "nan", "task.epochs=3", "optimizer.lr=1e30", "schedule.warmup_epochs=0")


def _interrupt_in_second_epoch(monkeypatch, step_in_epoch: int):
    """Make the progress callback raise KeyboardInterrupt (Ctrl-C) after that step of epoch 2."""
    original = ProgressLogger.on_step_end

    def interrupt(self, trainer, state, losses):
        original(self, trainer, state, losses)
        if state.step == trainer.steps_per_epoch + step_in_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressLogger, "on_step_end", interrupt)
    return original


def test_interrupt_keeps_the_last_checkpoint_loadable(tmp_path, monkeypatch):
    _interrupt_in_second_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted, match="task.resume=") as err:
        _train(tmp_path, "stop", "task.epochs=3")
    last = tmp_path / "stop" / "checkpoints" / "last.ckpt"
    assert str(last) in str(err.value)
    _, meta = read_checkpoint(last)
    assert meta["state"]["epoch"] == 1


def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    _, straight_history, straight = _train(tmp_path, "straight", "task.epochs=2")
    original = _interrupt_in_second_epoch(monkeypatch, 1)
    with pytest.raises(Interrupted):
        _train(tmp_path, "resumed", "task.epochs=2")
    monkeypatch.setattr(ProgressLogger, "on_step_end", original)
    _, resumed_history, resumed = _train(tmp_path, "resumed", "task.epochs=2", "task.resume=auto")

    a, meta_a = read_checkpoint(straight / "checkpoints" / "last.ckpt")
    b, meta_b = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert meta_a["state"]["step"] == meta_b["state"]["step"]
    assert meta_a["state"]["graph_weight"] == pytest.approx(meta_b["state"]["graph_weight"])
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(
            a[name].asnumpy(), b[name].asnumpy(), rtol=1e-5, atol=1e-6, err_msg=name
        )
    assert resumed_history["epoch_losses"][-1] == pytest.approx(
        straight_history["epoch_losses"][-1]
    )


@pytest.mark.parametrize("level", ["O2", "O3"])
def test_mixed_precision_trains_with_float32_heads_and_unchanged_names(tmp_path, level):
    summary, history, out = _train(
        tmp_path, level, "task.epochs=1", "task.max_steps_per_epoch=2", f"runtime.amp_level={level}"
    )
    assert np.isfinite(history["epoch_losses"][0]["total"])
    params, _ = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert "trunk.layer1.0.conv1.weight" in params and "classifier.weight" in params
    assert str(params["classifier.weight"].dtype) == "Float32"
    assert "v2t/FC_att/rank1" in summary


def _records_by_key(out):
    return {
        (r["protocol"], r["feature"]): r for r in json.loads((out / "results.json").read_text())
    }


def test_resume_keeps_model_selection(tmp_path, monkeypatch):
    """Killed between an evaluation and its last.ckpt, or mid-epoch, then resumed: the selected
    epoch, best.ckpt, the selection history and the test numbers equal an uninterrupted run's."""
    from ddag.engine.callbacks import CheckpointSaver

    run = ("task.epochs=4", "task.eval_every=1", "task.selection=val", "seed=3")
    straight_summary, straight_history, straight = _train(tmp_path, "straight", *run)
    assert len(straight_history["selection"]) == 4
    save, progress = CheckpointSaver.on_epoch_end, ProgressLogger.on_step_end

    def kill_before_save(self, trainer, state):
        if state.epoch == 2:  # epoch 2 is evaluated (best.ckpt may be new), last.ckpt is not
            raise KeyboardInterrupt
        save(self, trainer, state)

    def kill_mid_epoch(self, trainer, state, losses):
        progress(self, trainer, state, losses)
        if state.step == 2 * trainer.steps_per_epoch + 2:
            raise KeyboardInterrupt

    for name, target, patch in (
        ("before_save", CheckpointSaver, ("on_epoch_end", kill_before_save)),
        ("mid_epoch", ProgressLogger, ("on_step_end", kill_mid_epoch)),
    ):
        monkeypatch.setattr(target, *patch)
        with pytest.raises(Interrupted):
            _train(tmp_path, name, *run)
        monkeypatch.undo()
        summary, history, out = _train(tmp_path, name, *run, "task.resume=auto")
        assert history["selection"] == straight_history["selection"], name
        ours, theirs = _records_by_key(out), _records_by_key(straight)
        for key, record in theirs.items():
            assert ours[key]["flags"]["selected_epoch"] == record["flags"]["selected_epoch"]
            assert ours[key]["flags"]["selection"] == "val"
            assert ours[key]["mean"] == pytest.approx(record["mean"], abs=1e-6), (name, key)
        best, meta = read_checkpoint(out / "checkpoints" / "best.ckpt")
        expected, expected_meta = read_checkpoint(straight / "checkpoints" / "best.ckpt")
        assert meta["state"]["epoch"] == expected_meta["state"]["epoch"]
        for param in ("classifier.weight", "trunk.layer4.0.conv2.weight"):
            np.testing.assert_allclose(
                best[param].asnumpy(), expected[param].asnumpy(), rtol=1e-5, atol=1e-6
            )


def test_results_say_which_selection_was_done(tmp_path):
    # No validation identities: task.selection=val falls back to the last epoch, and says so.
    _, _, out = _train(
        tmp_path,
        "noval",
        "task.epochs=1",
        "task.max_steps_per_epoch=2",
        "dataset.num_val_ids=0",
        "task.selection=val",
    )
    flags = json.loads((out / "results.json").read_text())[0]["flags"]
    assert flags["selection"] == "last" and flags["requested_selection"] == "val"
    assert flags["selected_epoch"] == 1


def test_an_evaluated_checkpoint_fills_the_table_row_of_its_training_run(tmp_path):
    from ddag.evaluation.tables import build_table, collect_runs
    from ddag.tasks import eval as eval_task

    _, _, out = _train(tmp_path, "trained", "task.epochs=1", "task.max_steps_per_epoch=2", "seed=5")
    cfg = compose_config(
        TINY + ["task=eval", f"task.checkpoint={out / 'checkpoints' / 'last.ckpt'}"],
        output_dir=tmp_path / "evaluated",
    )
    eval_task.run(cfg)
    manifest = {"name": "t", "rows": [{"preset": "default", "protocol": "v2t", "seeds": [5]}]}
    row = build_table(manifest, collect_runs([str(tmp_path / "evaluated")])["records"])["rows"][0]
    assert (row["runs"], row["missing"]) == (1, [])
    trained = _records_by_key(out)[("v2t", "FC_att")]["mean"]
    assert row["mean"]["rank1"] == pytest.approx(100 * trained["rank1"], abs=1e-4)
