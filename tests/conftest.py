"""Shared fixtures: composed configs with tiny overrides and the reference data in tests/data."""

import json
import os
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ddag.config.schema import register_configs
from ddag.engine.runtime import HOST_BLOCKING_ENV

# runtime.host_blocking's default, for the tests that run MindSpore before any setup_runtime
# (MindSpore reads it once per process); subprocesses inherit it.
os.environ.setdefault(HOST_BLOCKING_ENV, "1")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = Path(__file__).resolve().parent / "data"

# Small enough for a CPU test, big enough to learn: 8 train ids, 4 images per id and modality.
TINY = [
    "logger=none",
    "dataset.num_train_ids=8",
    "dataset.num_val_ids=4",
    "dataset.num_test_ids=6",
    "dataset.images_per_id=4",
    "loader.num_ids=4",
    "loader.num_instances=2",
    "loader.height=32",
    "loader.width=16",
    "loader.padding=2",
    "loader.num_workers=1",
    "loader.test_batch_size=32",
]


def compose_config(overrides=(), output_dir=None):
    """The composed config as run.py would see it, with `paths.output_dir` set."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        # Configs composed only to be read still name an output folder: one outside the
        # repository, so the suite leaves nothing in the checkout.
        output_dir = output_dir or Path(tempfile.gettempdir()) / "ddag-tests-unused"
        extra = [f"paths.output_dir={output_dir}"]
        return compose("config", overrides=list(overrides) + extra)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than the cores (at most 4). Much of the suite waits on child
    processes (run.py, msrun, bounded readers) and their imports: on 2 cores three workers
    measured 5 min 59 s against 6 min 23 s for two."""
    return min(4, (os.cpu_count() or 1) + 1)


def pytest_collection_modifyitems(session, config, items):
    """Files with the most end-to-end (`slow`) tests first, so that the parallel workers, which
    take whole files in this order, start the longest ones early and finish together."""
    slow_per_file = {}
    for item in items:
        count = slow_per_file.setdefault(item.path, 0)
        slow_per_file[item.path] = count + (item.get_closest_marker("slow") is not None)
    first_seen = {path: index for index, path in enumerate(slow_per_file)}
    items.sort(key=lambda item: (-slow_per_file[item.path], first_seen[item.path]))


@pytest.fixture
def tiny_overrides():
    return list(TINY)


def reference_data(name: str) -> Path:
    """Path of a reference file kept in tests/data (see tests/data/README.md for its origin)."""
    path = DATA / name
    assert path.is_file(), f"{path} is missing from the repository"
    return path


def load_json(path: Path):
    return json.loads(path.read_text())
