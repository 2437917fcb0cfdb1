# ruff: noqa: E402 (MindSpore's log level is set before anything imports it)
"""ddag's one runner: `python run.py task=<train|eval> [group=option ...] [key=value ...]`.

Composes conf/, validates every key before anything is built, then runs ddag.tasks.<task.name>.
Errors the user can fix are printed as one paragraph; set HYDRA_FULL_ERROR=1 for tracebacks.
"""

import importlib
import logging
import os
import signal
import sys
import time
from pathlib import Path


def _stop_before_start(signum, frame) -> None:
    """SIGINT or SIGTERM while ddag loads and checks the command line: nothing is written yet,
    and an exception raised inside an import can abort the interpreter, so: one line, exit."""
    name = signal.Signals(signum).name
    os.write(2, f"stopped by {name} while starting; nothing was written\n".encode())
    os._exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _stop_before_start)
    signal.signal(signal.SIGTERM, _stop_before_start)

# MindSpore reads its log level (GLOG_v) once, when it is first imported: before any other import.
from ddag.utils.mindspore_logs import apply_mindspore_log_level, level_mismatch
from ddag.utils.native_logs import attach_run_log, route_native_logs

if __name__ == "__main__":
    apply_mindspore_log_level(sys.argv[1:])
    # MindSpore's C++ log lines go to run.log, not the console: fd 2 is piped before it loads.
    route_native_logs()

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ddag.config.context import RunContext
from ddag.config.overrides import check_command_line, help_text
from ddag.config.run_config import run_config
from ddag.config.schema import register_configs
from ddag.errors import FAILED_MARKER, NOT_FINISHED_MARKER, DdagError, Interrupted

log = logging.getLogger("ddag")
CONF_DIR = Path(__file__).resolve().parent / "conf"


def _run_stamp() -> str:
    """Run-directory stamp `<date>/<time>-<pid>`, shared by every rank of an msrun job on a node.

    The process id keeps two runs started in the same second apart. Each rank of an msrun job
    composes its own config at slightly different times, so `now` could differ; the ranks share
    their msrun parent process, whose start time and id make the stamp. Multi-node jobs should
    pass hydra.run.dir explicitly.
    """
    start, owner = time.time(), os.getpid()
    if "MS_WORKER_NUM" in os.environ:
        owner = os.getppid()
        try:
            ticks = int(
                Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
            )
            boot = next(
                int(line.split()[1])
                for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime")
            )
            start = boot + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, StopIteration):
            pass
    return time.strftime("%Y-%m-%d/%H-%M-%S", time.localtime(start)) + f"-{owner}"


def _rank_overrides() -> list:
    """Ranks other than 0 of an msrun job write nothing into the run directory."""
    if int(os.environ.get("RANK_ID", "0")) == 0:
        return []
    return ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


register_configs()
OmegaConf.register_new_resolver("ddag_run_stamp", _run_stamp, use_cache=True)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _mark_failed(err: BaseException) -> None:
    """In a sweep, a failed job leaves a FAILED file and the sweep goes on."""
    out = Path(HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / FAILED_MARKER).write_text(f"{type(err).__name__}: {err}\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt (exit status 143)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated("SIGTERM")


def _signal_of(err: KeyboardInterrupt):
    """(signal name, the exit status a shell reports for it) of a stop."""
    return ("SIGTERM", 143) if isinstance(err, Terminated) else ("SIGINT", 130)


def _stopped(err: KeyboardInterrupt, task: str) -> None:
    """One line for a task stopped by SIGINT or SIGTERM outside training, then its exit status
    (130, 143), as a shell reports a process the signal ended."""
    name, status = _signal_of(err)
    message = (
        f"stopped by {name} during task={task}; its outputs are written when it finishes, so "
        "this run folder keeps only run.log and .hydra/. Run the same command again"
    )
    log.error(message)
    _mark_not_finished(message)
    sys.exit(status)


def _stopped_while_starting(err: KeyboardInterrupt) -> None:
    """SIGINT or SIGTERM while Hydra composes the config and prepares the run folder."""
    name, status = _signal_of(err)
    message = f"stopped by {name} while the run was starting: nothing was run"
    sys.stderr.write(
        message + (" (the folder keeps only its config)\n" if _mark_not_finished(message) else "\n")
    )
    sys.exit(status)


def _mark_not_finished(message: str) -> bool:
    """Write NOT_FINISHED, saying why, into the run folder when there is one: a folder holding
    only run.log and .hydra/ then says itself that its run never ran to the end."""
    if not HydraConfig.initialized():
        return False
    try:
        folder = Path(HydraConfig.get().runtime.output_dir)
        if folder.is_dir():
            (folder / NOT_FINISHED_MARKER).write_text(message + "\n")
            return True
    except Exception:  # a stop while Hydra sets the folder up: there is nothing to mark
        pass
    return False


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    attach_run_log()  # this job's run.log, which Hydra has just set up
    task_name = str(cfg.get("task", {}).get("name", "?"))
    try:
        config = run_config(cfg)  # validated and typed: what every task receives
        mismatch = level_mismatch(config.runtime.log_level)
        if mismatch:
            log.info(mismatch)
        task = importlib.import_module(f"ddag.tasks.{config.task.name}")
        return task.run(config, RunContext.from_hydra())
    except DdagError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s: %s", type(err).__name__, err)
        if _in_multirun() and not isinstance(err, Interrupted):
            _mark_failed(err)
            return None
        sys.exit(130 if isinstance(err, Interrupted) else 1)
    except KeyboardInterrupt as err:  # training turns these into Interrupted itself
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _stopped(err, task_name)
    except Exception as err:  # a bug: in a sweep keep the other jobs going, with the traceback
        if not _in_multirun():
            raise
        log.exception("job failed")
        _mark_failed(err)
        return None


def _compose(overrides: list) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def _check_command_line(argv: list) -> None:
    """ddag's help and typo answers before Hydra composes (one paragraph, exit status 1)."""
    if any(a in ("--help", "-h") for a in argv):
        sys.stdout.write(help_text(CONF_DIR) + "\n")
        sys.exit(0)
    try:
        check_command_line(argv, CONF_DIR, _compose)
    except DdagError as err:
        sys.stderr.write(f"{type(err).__name__}: {err}\n")
        sys.exit(1)


if __name__ == "__main__":
    _check_command_line(sys.argv[1:])
    sys.argv += _rank_overrides()
    # From here on a stop is an exception: the run folder may exist, and it is marked.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
    except KeyboardInterrupt as stop:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _stopped_while_starting(stop)
