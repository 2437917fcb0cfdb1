"""Device, execution mode and seeds, set once per run from the `runtime` config."""

import dataclasses
import os
import random
from dataclasses import dataclass

import mindspore as ms
import mindspore.dataset as ds
import numpy as np

from ddag.engine.device_check import device_fix, device_problems
from ddag.engine.distributed import DistributedContext, init_distributed
from ddag.errors import DeviceError
from ddag.utils.fields import bounded, check_fields, choice
from ddag.utils.logging import get_logger
from ddag.utils.mindspore_logs import LOG_LEVELS

log = get_logger(__name__)

DEVICE_TARGETS = ("CPU", "GPU", "Ascend")
# MindSpore's switch for running CPU kernels in the calling thread; read once per process.
HOST_BLOCKING_ENV = "MS_DEV_HOST_BLOCKING_RUN"
MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}
AMP_LEVELS = ("O0", "O1", "O2", "O3", "auto")


@dataclass
class RuntimeSettings:
    """Where and how MindSpore runs.

    Attributes:
        device_target: "CPU", "GPU" or "Ascend".
        device_id: device index on the machine.
        mode: "graph" (compiled, default) or "pynative" (eager, for debugging).
        jit_step: compile the train step with `ms.jit`; False runs it eagerly (debugging).
        deterministic: ask MindSpore for deterministic kernels.
        distributed: data-parallel over the ranks of an msrun job.
        amp_level: mixed precision, "O0" (float32) .. "O3" or "auto" (MindSpore's levels).
        num_threads: threads of MindSpore's CPU runtime (0: MindSpore's default).
        host_blocking: CPU only: run kernels in the calling thread instead of MindSpore's
            asynchronous pipeline, whose waiting Python thread spins on a core the kernels
            need (same numbers; on 2 cores the ResNet-50 DDAG step takes 2.7 s instead of
            4.7 s). MindSpore reads it once per process, before its first kernel.
        log_level: MindSpore's own log lines shown: "error" (default: compiler notes such as
            expander_fallback and absent-plugin lines hidden), "warning", "info", "debug".
            MindSpore reads it when it is imported, so run.py applies it from the command line
            before importing anything (`ddag.utils.mindspore_logs`); GLOG_v in the environment
            is used when no level is given.
    """

    device_target: str = choice("CPU", DEVICE_TARGETS)
    device_id: int = bounded(0, 0, 1023)
    mode: str = choice("graph", MODES)
    jit_step: bool = True
    deterministic: bool = False
    distributed: bool = False
    amp_level: str = choice("O0", AMP_LEVELS)
    num_threads: int = bounded(0, 0, 1024)
    host_blocking: bool = True
    log_level: str = choice("error", LOG_LEVELS)


def device_available(target: str) -> bool:
    """Whether MindSpore can use `target` on this machine."""
    if target == "CPU":
        return True
    from mindspore import device_context

    module = {"GPU": device_context.gpu, "Ascend": device_context.ascend}[target]
    try:
        return bool(module.is_available())
    except Exception:  # a missing plugin library reports itself as an exception
        return False


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, MindSpore and the dataset pipeline."""
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
    ds.config.set_seed(seed)


def _set_host_blocking(settings: RuntimeSettings) -> None:
    if settings.device_target != "CPU":
        return
    wanted = "1" if settings.host_blocking else "0"
    if os.environ.get(HOST_BLOCKING_ENV, wanted) != wanted:
        log.warning(
            "runtime.host_blocking=%s, but %s was %s: MindSpore reads it once per process, "
            "so in a process that has already run MindSpore the earlier value stays",
            str(settings.host_blocking).lower(),
            HOST_BLOCKING_ENV,
            os.environ[HOST_BLOCKING_ENV],
        )
    os.environ[HOST_BLOCKING_ENV] = wanted


def setup_runtime(settings: RuntimeSettings, seed: int) -> DistributedContext:
    """Apply device, mode, determinism, seeds; join an msrun job when distributed.

    Raises DeviceError when the device is absent or msrun is missing.
    """
    check_fields(RuntimeSettings, dataclasses.asdict(settings), "runtime")
    if settings.host_blocking and settings.device_target != "CPU":
        raise DeviceError(
            f"runtime.host_blocking=true is for CPU runs; runtime.device_target="
            f"{settings.device_target} keeps MindSpore's asynchronous launch "
            f"(runtime=gpu and runtime=ascend set runtime.host_blocking=false)"
        )
    problems = device_problems(settings.device_target)
    if problems:
        raise DeviceError(
            f"runtime.device_target={settings.device_target} cannot run on this machine: "
            + "; ".join(problems)
            + f". {device_fix(settings.device_target)}; or use runtime=cpu"
        )
    if not device_available(settings.device_target):
        raise DeviceError(
            f"runtime.device_target={settings.device_target} but no {settings.device_target} "
            f"device (or MindSpore build for it) is available on this machine. Use runtime=cpu, "
            f"or install "
            f"the MindSpore {settings.device_target} package on a machine that has the device."
        )
    _set_host_blocking(settings)
    ms.set_context(mode=MODES[settings.mode])
    device_id = settings.device_id
    if settings.distributed and settings.device_target != "CPU":
        device_id = int(os.environ.get("DEVICE_ID", device_id))  # msrun: one device per rank
    try:
        ms.set_device(settings.device_target, device_id)
    except RuntimeError as err:
        # In one process (a notebook, the tests) kernels may already have run on the default
        # CPU device; MindSpore then refuses set_device even for the same target.
        if settings.device_target != "CPU":
            raise DeviceError(
                f"cannot switch this process to {settings.device_target}: MindSpore already ran "
                f"on another device ({err}). Start a new process."
            ) from err
    if settings.deterministic:
        ms.set_context(deterministic="ON")
    if settings.num_threads > 0:
        ms.set_context(runtime_num_threads=settings.num_threads)
    seed_everything(seed)
    return init_distributed(settings.distributed)
