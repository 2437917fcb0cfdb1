"""GPU and Ascend set-up checked on the CPU by faking the environment: each missing piece named."""

import stat
import subprocess

import pytest

from ddag.engine import device_check
from ddag.engine.device_check import CUDA_LIBRARIES, DRIVER_LIBRARY, device_problems


def _no_cache(args, **kwargs):
    """`ldconfig -p` of a machine whose loader cache knows nothing."""
    return subprocess.CompletedProcess(args, 0, stdout="0 libs found in cache\n", stderr="")


def _libraries(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return str(folder)


def _toolkit(folder, release):
    nvcc = folder / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return str(folder)


def test_an_empty_library_path_names_the_driver_and_every_cuda_11_library(tmp_path):
    problems = device_problems("GPU", {"LD_LIBRARY_PATH": str(tmp_path)}, _no_cache)
    assert any(DRIVER_LIBRARY in p for p in problems)
    text = " ".join(problems)
    assert all(name in text for name in CUDA_LIBRARIES)


def test_a_complete_cuda_11_set_passes_and_one_missing_library_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(device_check, "STANDARD_LIBRARY_DIRS", ())
    libs = _libraries(tmp_path / "lib", (DRIVER_LIBRARY, *CUDA_LIBRARIES))
    assert device_problems("GPU", {"LD_LIBRARY_PATH": libs}, _no_cache) == []
    (tmp_path / "lib" / "libcudnn.so.8").unlink()
    assert device_problems("GPU", {"LD_LIBRARY_PATH": libs}, _no_cache) == [
        "CUDA 11 user libraries not found: libcudnn.so.8"
    ]


def test_libraries_known_to_the_loader_cache_count_as_found(tmp_path, monkeypatch):
    monkeypatch.setattr(device_check, "STANDARD_LIBRARY_DIRS", ())

    def cache(args, **kwargs):
        lines = [f"\t{n} (libc6,x86-64) => /usr/local/cuda/lib64/{n}" for n in CUDA_LIBRARIES]
        lines.append(f"\t{DRIVER_LIBRARY} (libc6,x86-64) => /usr/lib/{DRIVER_LIBRARY}")
        return subprocess.CompletedProcess(args, 0, "9 libs found\n" + "\n".join(lines), "")

    assert device_problems("GPU", {"LD_LIBRARY_PATH": str(tmp_path)}, cache) == []


@pytest.mark.parametrize("release, refused", [("12.4", True), ("11.6", False)])
def test_cuda_home_of_another_major_version_is_named(tmp_path, monkeypatch, release, refused):
    monkeypatch.setattr(device_check, "STANDARD_LIBRARY_DIRS", ())
    libs = _libraries(tmp_path / "lib", (DRIVER_LIBRARY, *CUDA_LIBRARIES))
    env = {"LD_LIBRARY_PATH": libs, "CUDA_HOME": _toolkit(tmp_path / "cuda", release)}
    problems = device_problems("GPU", env, _no_cache)
    assert bool(problems) == refused
    if refused:
        assert f"is CUDA {release}" in problems[0] and "11.1 or 11.6" in problems[0]


def test_ascend_names_a_missing_toolkit_a_wrong_cann_version_and_a_missing_library(tmp_path):
    assert "ASCEND_HOME_PATH" in device_problems("Ascend", {}, _no_cache)[0]
    home = tmp_path / "ascend-toolkit" / "latest"
    (home / "compiler").mkdir(parents=True)
    (home / "compiler" / "version.info").write_text("Version=7.0.0\n")
    problems = device_problems("Ascend", {"ASCEND_HOME_PATH": str(home)}, _no_cache)
    assert "CANN 7.0" in problems[0] and "8.2, 8.3, 8.5" in problems[0]
    assert "libascendcl.so not found" in problems[1]
    (home / "compiler" / "version.info").write_text("Version=8.3.RC1\n")
    _libraries(home / "lib64", ["libascendcl.so"])
    assert device_problems("Ascend", {"ASCEND_HOME_PATH": str(home)}, _no_cache) == []


def test_runtime_gpu_stops_before_anything_is_built_with_the_fix(monkeypatch, tmp_path):
    from ddag.engine.runtime import RuntimeSettings, setup_runtime
    from ddag.errors import DeviceError

    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    monkeypatch.setattr(device_check, "STANDARD_LIBRARY_DIRS", ())
    monkeypatch.setattr(device_check, "ldconfig_libraries", lambda run=None: set())
    settings = RuntimeSettings(device_target="GPU", host_blocking=False)
    with pytest.raises(DeviceError, match="nvidia-cudnn-cu11") as err:
        setup_runtime(settings, 0)
    assert "libcudart.so.11.0" in str(err.value) and "runtime=cpu" in str(err.value)
