"""runtime settings: MindSpore's blocking host launch on CPU, refused elsewhere."""

import logging
import os

import pytest

from ddag.engine.runtime import HOST_BLOCKING_ENV, RuntimeSettings, setup_runtime
from ddag.errors import DeviceError
from tests.conftest import compose_config


@pytest.mark.parametrize("blocking, value", [(True, "1"), (False, "0")])
def test_host_blocking_sets_mindspore_s_switch(blocking, value, monkeypatch):
    monkeypatch.delenv(HOST_BLOCKING_ENV, raising=False)
    setup_runtime(RuntimeSettings(mode="pynative", host_blocking=blocking), seed=0)
    assert os.environ[HOST_BLOCKING_ENV] == value


def test_a_late_change_of_host_blocking_is_reported(monkeypatch, caplog):
    monkeypatch.setenv(HOST_BLOCKING_ENV, "1")
    with caplog.at_level(logging.WARNING):
        setup_runtime(RuntimeSettings(mode="pynative", host_blocking=False), seed=0)
    assert "reads it once per process" in caplog.text


def test_host_blocking_is_for_cpu_and_off_in_the_device_runtimes():
    for name in ("gpu", "ascend"):
        assert compose_config([f"runtime={name}"]).runtime.host_blocking is False
    assert compose_config([]).runtime.host_blocking is True
    with pytest.raises(DeviceError, match="host_blocking=true is for CPU"):
        setup_runtime(RuntimeSettings(device_target="GPU"), seed=0)
