"""What a GPU or Ascend run needs that this machine lacks, told before MindSpore is asked.

The facts come from the installed MindSpore 2.8.0 wheel: its GPU plugins
(`lib/plugin/libmindspore_gpu.so.11.1`, `.11.6`) link against the CUDA 11 user libraries below
(`readelf -d`), and its own environment checker (`mindspore/run_check/_check_version.py`)
accepts CUDA 11.1 with cuDNN 8.0 or 11.6 with cuDNN 8.5, and CANN 8.2, 8.3 or 8.5 on Ascend.
"""

import glob
import os
import re
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional

# NEEDED entries of libmindspore_gpu.so.11.6 (11.1 needs the same sonames).
CUDA_LIBRARIES = (
    "libcudart.so.11.0",
    "libcublas.so.11",
    "libcudnn.so.8",
    "libcufft.so.10",
    "libcurand.so.10",
    "libcusolver.so.11",
    "libcusparse.so.11",
    "libnvrtc.so.11.2",
)
DRIVER_LIBRARY = "libcuda.so.1"
CUDA_VERSIONS = ("11.1", "11.6")
CANN_VERSIONS = ("8.2", "8.3", "8.5")
CANN_LIBRARY = "libascendcl.so"
STANDARD_LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64")
CUDA_FIX = (
    "Install the CUDA 11 user libraries in the virtual environment: pip install "
    "nvidia-cuda-runtime-cu11 nvidia-cublas-cu11 'nvidia-cudnn-cu11<9' nvidia-cufft-cu11 "
    "nvidia-curand-cu11 nvidia-cusolver-cu11 nvidia-cusparse-cu11 nvidia-cuda-nvrtc-cu11, put "
    "their lib folders on LD_LIBRARY_PATH (README: Running on a GPU), and point CUDA_HOME at a "
    "CUDA 11 toolkit or unset it"
)


def library_dirs(environ: Mapping[str, str]) -> List[str]:
    """Folders searched for shared libraries: LD_LIBRARY_PATH, then the standard ones."""
    given = [d for d in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    return given + list(STANDARD_LIBRARY_DIRS)


def ldconfig_libraries(run: Callable = subprocess.run) -> set:
    """Sonames the dynamic loader's cache knows (`ldconfig -p`), e.g. /usr/local/cuda/lib64's."""
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        try:
            result = run([ldconfig, "-p"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        return {line.split()[0] for line in (result.stdout or "").splitlines()[1:] if line.split()}
    return set()


def missing_libraries(
    names: Iterable[str], dirs: Iterable[str], cached: Optional[set] = None
) -> List[str]:
    """The sonames of `names` found in none of `dirs` nor in the loader's cache `cached`."""
    dirs, cached = list(dirs), cached or set()
    return [n for n in names if n not in cached and not any(Path(d, n).exists() for d in dirs)]


def nvcc_version(cuda_home: str, run: Callable = subprocess.run) -> Optional[str]:
    """`12.4` from `$CUDA_HOME/bin/nvcc --version`; None when it cannot be read."""
    nvcc = Path(cuda_home) / "bin" / "nvcc"
    if not nvcc.is_file():
        return None
    try:
        output = run([str(nvcc), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+\.\d+)", output or "")
    return match.group(1) if match else None


def gpu_problems(environ: Mapping[str, str], run: Callable = subprocess.run) -> List[str]:
    """What MindSpore 2.8.0's GPU plugin will not find on this machine."""
    problems = []
    dirs, cached = library_dirs(environ), ldconfig_libraries(run)
    if missing_libraries([DRIVER_LIBRARY], dirs, cached):
        problems.append(
            f"no NVIDIA driver library ({DRIVER_LIBRARY}) in {', '.join(dirs)}: no GPU driver"
        )
    missing = missing_libraries(CUDA_LIBRARIES, dirs, cached)
    if missing:
        problems.append(f"CUDA 11 user libraries not found: {', '.join(missing)}")
    cuda_home = environ.get("CUDA_HOME")
    if cuda_home:
        version = nvcc_version(cuda_home)  # a real (or test-made) nvcc, run as it is
        if version is not None and version not in CUDA_VERSIONS:
            problems.append(
                f"CUDA_HOME={cuda_home} is CUDA {version}; MindSpore 2.8.0's GPU plugins are "
                f"built for CUDA {' or '.join(CUDA_VERSIONS)} and find no suitable plugin"
            )
    return problems


def cann_version(ascend_home: str) -> Optional[str]:
    """`8.3` from `$ASCEND_HOME_PATH/compiler/version.info` (`Version=8.3.RC1`)."""
    info = Path(ascend_home) / "compiler" / "version.info"
    try:
        text = info.read_text(errors="replace")[:10_000]
    except OSError:
        return None
    match = re.search(r"^Version=(\d+\.\d+)", text, re.MULTILINE)
    return match.group(1) if match else None


def ascend_problems(environ: Mapping[str, str], run: Callable = subprocess.run) -> List[str]:
    """What MindSpore 2.8.0 needs of CANN that this machine does not show."""
    home = environ.get("ASCEND_HOME_PATH")
    if not home or not Path(home).is_dir():
        return [
            "CANN not found: ASCEND_HOME_PATH is not set to an installed toolkit (source "
            "/usr/local/Ascend/ascend-toolkit/set_env.sh)"
        ]
    problems = []
    version = cann_version(home)
    if version is not None and version not in CANN_VERSIONS:
        problems.append(
            f"CANN {version} at {home}; MindSpore 2.8.0 expects CANN {', '.join(CANN_VERSIONS)}"
        )
    dirs = library_dirs(environ) + glob.glob(str(Path(home) / "lib64"))
    if missing_libraries([CANN_LIBRARY], dirs, ldconfig_libraries(run)):
        problems.append(f"{CANN_LIBRARY} not found on LD_LIBRARY_PATH nor in {home}/lib64")
    return problems


def device_problems(
    target: str, environ: Optional[Mapping[str, str]] = None, run: Callable = subprocess.run
) -> List[str]:
    """What keeps `target` from running here ([] for CPU and for a machine that looks right)."""
    environ = os.environ if environ is None else environ
    checks: Dict[str, Callable] = {"GPU": gpu_problems, "Ascend": ascend_problems}
    return checks[target](environ, run) if target in checks else []


def device_fix(target: str) -> str:
    if target == "GPU":
        return CUDA_FIX
    return f"Install CANN {', '.join(CANN_VERSIONS)} with its driver and source its set_env.sh"
