"""task=bench runs and reports every part (timings are reported, never asserted)."""

import json

from ddag.tasks import bench
from tests.conftest import TINY, compose_config


def test_bench_reports_every_part(tmp_path):
    cfg = compose_config(
        TINY + ["task=bench", "task.repeats=1", "task.warmup=0"], output_dir=tmp_path
    )
    bench.run(cfg)
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["mindspore"] == "2.8.0"
    assert report["conv"]["conv3x3_gflops"] > 0 and report["conv"]["matmul_gflops"] > 0
    assert set(report["metrics"]) == {"sysu_10_trials_s", "regdb_s"}
    for name in ("ddag", "backbone"):
        entry = report["train"][name]
        assert entry["images_per_s"] > 0 and entry["infer_images_per_s"] > 0
        assert set(entry["step_s"]) == {"min", "median", "max"}
    assert report["train"]["ddag_over_backbone_step"] > 0
    assert report["train"]["backbone_over_ddag_inference"] > 0
    assert 0 < report["data"]["share_of_step"]
    assert report["peak_memory_mb"] > 0
