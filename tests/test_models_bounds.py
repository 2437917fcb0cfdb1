"""Component values that would allocate gigabytes are refused when the component is built.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import time

import pytest

from ddag.config.run_config import run_config
from ddag.errors import ConfigError
from tests.conftest import TINY, compose_config

# 4. Values that allocate: bounded at start-up ------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.part_attention.num_parts=1000000000", "num_parts must be between 1 and 64"),
        ("model.backbone.layers=[0,0,0,0]", "layers must"),
        ("model.backbone.widths=[16,16,32,100000000]", "widths, stem_channels"),
        ("model.graph_attention.num_heads=1000000", "num_heads=1000000 must be in 1..64"),
        ("model.low_dim=1000000000", "low_dim=1000000000"),
    ],
)
def test_component_values_that_would_allocate_are_refused_when_built(override, message):
    from ddag.models.architecture import build_network

    cfg = compose_config(TINY + [override])
    start = time.monotonic()
    with pytest.raises(ConfigError, match=message):
        build_network(run_config(cfg).model, 5)
    assert time.monotonic() - start < 2
