"""task=bench runs and reports every part (timings are reported, never asserted)."""

import json

import pytest

from ddag.config.run_config import run_config
from ddag.errors import ConfigError
from ddag.tasks import bench
from tests.conftest import TINY, compose_config


def test_bench_reports_every_part(tmp_path):
    parts = "task.parts=[conv,metrics,train,data,profile]"
    # Eager: the report's shape is the same in both modes, and compiling costs ~15 s here.
    eager = ["runtime.mode=pynative", "runtime.jit_step=false"]
    cfg = compose_config(
        TINY + ["task=bench", "task.repeats=1", "task.warmup=0", parts, *eager],
        output_dir=tmp_path,
    )
    bench.run(run_config(cfg))
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["mindspore"] == "2.8.0"
    assert report["conv"]["conv3x3_gflops"] > 0 and report["conv"]["matmul_gflops"] > 0
    assert set(report["metrics"]) == {
        "sysu_10_trials_s",
        "regdb_s",
        "sysu_official_1shot_10_trials_s",
        "sysu_official_10shot_10_trials_s",
    }
    for name in ("ddag", "backbone"):
        entry = report["train"][name]
        assert entry["images_per_s"] > 0 and entry["infer_images_per_s"] > 0
        assert set(entry["step_s"]) == {"min", "median", "max"}
    assert report["train"]["ddag_over_backbone_step"] > 0
    assert report["train"]["backbone_over_ddag_inference"] > 0
    assert 0 < report["data"]["share_of_step"]
    assert report["peak_memory_mb"] > 0
    profile = report["train"]["profile"]
    assert profile["kernel_ms_per_step"] > 0 and profile["wall_ms_per_step"] > 0
    assert profile["groups_ms_per_step"]["convolution"] > 0
    kinds = {c["kind"] for c in profile["convolutions_ms_per_step"]}
    assert kinds == {"forward", "backward (input)", "backward (weight)"}
    assert all("[" in c["shapes"] for c in profile["convolutions_ms_per_step"])
    assert {"Conv2D", "BatchNorm"} <= set(profile["op_types_ms_per_step"])


def test_bench_reference_needs_a_checkout_and_torch(tmp_path):
    base = TINY + ["task=bench", "task.repeats=1", "task.warmup=0", "task.parts=[train]"]
    cfg = compose_config(base + [f"task.reference={tmp_path}"], output_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="no model_main.py there"):
        bench.run(run_config(cfg))
    (tmp_path / "model_main.py").write_text("import torch\n")
    checkout = tmp_path
    # This environment has no torch, so the reference process fails and says what it needs.
    cfg = compose_config(
        base + [f"task.reference={checkout}", "task.rounds=1"], output_dir=tmp_path / "b"
    )
    with pytest.raises(ConfigError, match="needs torch"):
        bench.run(run_config(cfg))
    deen = base + ["model=deen", "model/backbone=tiny", f"task.reference={tmp_path}"]
    cfg = compose_config(deen, output_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="no model.py there; give the DEEN/ folder"):
        bench.run(run_config(cfg))
    pmt = base + ["model=pmt", "model/backbone=vit_tiny", f"task.reference={tmp_path}"]
    cfg = compose_config(pmt, output_dir=tmp_path / "p")
    with pytest.raises(ConfigError, match="no model/make_model.py there; give the Pytorch-PMT"):
        bench.run(run_config(cfg))
    bad = compose_config(TINY + ["task=bench", "task.parts=[trian]"], output_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="unknown"):
        bench.run(run_config(bad))


def test_a_long_measurement_prints_progress_lines(monkeypatch, caplog):
    import logging
    import types

    ticks = iter(float(t) for t in range(0, 1000, 4))  # every call of the clock: 4 s later
    from ddag.bench import timing as timing_module

    clock = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(timing_module, "time", clock)
    with caplog.at_level(logging.INFO, logger="ddag.bench.timing"):
        timing = timing_module.repeat_timed(lambda: None, repeats=6, warmup=2, label="train step")
    assert timing["median"] == 4.0
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("  train step: run ") and "4.00 s each" in line for line in lines)
    assert 1 <= len(lines) <= 8  # one line per interval, not per run


def test_bench_times_the_step_training_would_run_with_two_visible_views(tmp_path):
    # The bench builds its objective as training does: with loader.visible_views=2 a step
    # takes B = 4 x 2 pairs as 2B visible + B thermal images (it counted 4B before).
    eager = ["runtime.mode=pynative", "runtime.jit_step=false"]
    overrides = ["task=bench", "task.repeats=1", "task.warmup=0", "task.parts=[train]"]
    cfg = compose_config(TINY + overrides + ["loader.visible_views=2", *eager], tmp_path)
    bench.run(run_config(cfg))
    train = json.loads((tmp_path / "bench.json").read_text())["train"]
    for name in ("ddag", "backbone"):
        images = train[name]["images_per_s"] * train[name]["step_s"]["median"]
        assert images == pytest.approx(3 * 8)


def test_inference_part_times_both_backends_and_the_reference_in_rounds(tmp_path, caplog):
    import logging

    checkout = tmp_path / "DDAG"
    checkout.mkdir()
    (checkout / "model_main.py").write_text("")
    # A stand-in for the torch side environment: the reference script's protocol, progress
    # lines on stderr and one JSON line on stdout (this environment has no torch).
    fake = tmp_path / "fake_python"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "inference 3/3 (timed), 0.50 s" >&2\n'
        'echo \'{"torch": "0.0-fake", "threads": 1, "infer_s": [0.5, 0.5, 0.5]}\'\n'
    )
    fake.chmod(0o755)
    overrides = TINY + ["task=bench", "task.parts=[infer]", "task.repeats=2", "task.rounds=2"]
    overrides += [f"task.reference={checkout}", f"task.reference_python={fake}"]
    cfg = compose_config(overrides + ["loader.test_batch_size=8"], output_dir=tmp_path / "run")
    with caplog.at_level(logging.INFO):
        report = bench.run(run_config(cfg))["infer"]
    assert set(report["images_per_s"]) == {"mindspore", "onnxruntime", "reference"}
    assert report["images_per_s"]["reference"] == pytest.approx(8 / 0.5)
    assert len(report["seconds"]["mindspore"]) == len(report["seconds"]["reference"]) // 3 * 2
    assert report["max_feature_difference"] < 1e-5  # the two backends compute one network
    assert report["onnxruntime_over_mindspore"] > 0 and report["mindspore_over_reference"] > 0
    text = caplog.text
    assert "reference: inference 3/3 (timed)" in text  # the reference's progress, as it comes
    assert "inference round 2/2: mindspore" in text
    assert "the reference network is the paper's ResNet-50 DDAG" in text  # TINY is not


def test_data_part_compares_with_the_reference_dataloader_in_rounds(tmp_path, caplog):
    import logging

    checkout = tmp_path / "DDAG"
    checkout.mkdir()
    (checkout / "model_main.py").write_text("")
    arguments = tmp_path / "arguments.txt"
    fake = tmp_path / "fake_python"  # the side environment's protocol, without torch
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {arguments}\necho "batch 2/2, 100 images/s" >&2\n'
        'echo \'{"torch": "0.0-fake", "workers": 4, "images_per_s": 100.0}\'\n'
    )
    fake.chmod(0o755)
    overrides = TINY + ["task=bench", "task.parts=[data]", "task.repeats=2", "task.rounds=2"]
    overrides += ["loader/augment=[pad_crop_flip,random_erasing,channel_aug]"]
    overrides += [f"task.reference={checkout}", f"task.reference_python={fake}"]
    with caplog.at_level(logging.INFO):
        report = bench.run(run_config(compose_config(overrides, output_dir=tmp_path / "run")))
    reference = report["data"]["reference"]
    assert reference["reference_images_per_s"] == 100.0 and reference["workers"] == 4
    assert reference["ddag_over_reference"] == reference["ddag_images_per_s"] / 100.0
    assert reference["augment"] == ["channel_aug", "random_erasing"]
    calls = [line for line in arguments.read_text().splitlines() if "reference_data.py" in line]
    assert len(calls) == 2  # one reference run per round
    assert "--workers 4 --augment channel_aug random_erasing" in calls[0]
    assert "--height 32 --width 16 --padding 2 --batch 8" in calls[0]
    assert "data round 2/2: ddag" in caplog.text
