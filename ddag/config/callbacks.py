"""Hydra callbacks: one live run per output folder, and a sweep's end report of failed jobs."""

import fcntl
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ddag.errors import FAILED_MARKER
from ddag.utils.logging import current_rank, get_logger

log = get_logger(__name__)
LOCK_NAME = ".ddag.lock"


class OutputFolderLock(Callback):
    """Holds an exclusive lock on the run (or sweep) folder for the life of the process.

    Taken before Hydra writes anything into the folder, so a second run pointed at a folder a
    live run holds stops with a message instead of mixing configs, checkpoints and results.
    The operating system releases the lock when the process ends, however it ends. Ranks other
    than 0 of an msrun job, and its scheduler process (which runs this script too), share rank
    0's folder and take no lock.
    """

    def __init__(self):
        self._handle = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._lock(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._lock(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")

    def _lock(self, folder: Path, key: str) -> None:
        if current_rank() != 0 or os.environ.get("MS_ROLE") == "MS_SCHED":
            return
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_NAME, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            log.error(
                "ConfigError: %s is in use by a live run (%s). Wait for it to finish, or give "
                "this run its own folder: %s=<new folder>",
                folder,
                holder,
                key,
            )
            sys.exit(1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle


class FailedJobsReport(Callback):
    """After a multirun, list the jobs that failed (their directories hold a FAILED file) and
    end the process with status 1, so scripts and schedulers see that the sweep failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = sorted(sweep_dir.rglob(FAILED_MARKER))
        if failed:
            lines = [f"  {m.parent}: {m.read_text().strip()}" for m in failed]
            log.error(
                "%d job(s) of the sweep failed; the others' results are kept:\n%s",
                len(failed),
                "\n".join(lines),
            )
            sys.exit(1)
