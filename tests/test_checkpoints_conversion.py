"""Architectures read off the tensors of foreign files (ddag/checkpoints/conversion.py) stay
within the bounds of what they may build.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import time

import numpy as np
import pytest

from ddag.errors import CheckpointError

# 2. Architectures read off tensors (task=convert) --------------------------------------------


def test_a_stray_block_index_does_not_build_a_hundred_thousand_blocks():
    from ddag.checkpoints.conversion import resnet_layout

    arrays = {"conv1.weight": np.zeros((4, 3, 7, 7), np.float32)}
    for stage in range(1, 5):
        for conv in ("conv1", "conv2"):
            arrays[f"layer{stage}.0.{conv}.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    assert resnet_layout(arrays)["layers"] == [1, 1, 1, 1]
    arrays["layer1.100000.conv1.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="numbered .* not 0..n-1"):
        resnet_layout(arrays)
    assert time.monotonic() - start < 1
    del arrays["layer1.100000.conv1.weight"]
    arrays["layer2.1.conv1.weight"] = np.zeros((4, 4, 3, 3), np.float32)  # conv2 absent
    with pytest.raises(CheckpointError, match="layer2.1.conv2.weight is missing"):
        resnet_layout(arrays)
