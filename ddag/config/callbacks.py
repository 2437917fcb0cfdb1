"""Hydra callbacks: one live run per output folder, no finished run overwritten, and a sweep's
end: the summary over seeds, then the report of failed jobs."""

import atexit
import json
import os
import sys
import time
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ddag.errors import FAILED_MARKER, NOT_FINISHED_MARKER
from ddag.reporting.sweep_summary import setting_of, summarize, summary_markdown, write_summary
from ddag.utils.locks import UnsafeLockFile, abrupt_end, live_holder, mark_ended, try_lock
from ddag.utils.logging import current_rank, get_logger

log = get_logger(__name__)
LOCK_NAME = ".ddag.lock"
# What a run leaves that a new run in the same folder would replace.
# What a finished task leaves (globs for outputs named by task.output or task.format).
RUN_RECORDS = (
    "results.json",
    "train_history.json",
    "checkpoints",
    "bench.json",
    "visualize.json",
    "ranking.json",
    "convert_report.json",
    "*.npz",
    "*.mindir",
    "*.onnx",
)
# Folders that mark a dataset root (SYSU-MM01, RegDB, LLCM): never a place for results.
DATASET_MARKERS = (("cam1", "cam3", "exp"), ("Visible", "Thermal", "idx"), ("idx", "test_nir"))


def place_refusal(folder: Path, key: str):
    """Why `folder` cannot receive a run's outputs at all (a file, a dataset root), or None."""
    if folder.exists() and not folder.is_dir():
        return f"{key}={folder} is a file, not a folder; choose a folder for the run's outputs"
    resolved = folder.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        return (
            f"{key}={folder} is the filesystem root or your home folder; a run writes its "
            f"records and checkpoints there. Choose a folder of its own: {key}=<new folder>"
        )
    if any(all((folder / name).is_dir() for name in marker) for marker in DATASET_MARKERS):
        return (
            f"{key}={folder} is a dataset root; results and checkpoints would be written into "
            f"your data. Choose another folder: {key}=<new folder>"
        )
    if folder.is_dir() and not is_run_folder(folder) and any(folder.iterdir()):
        shown = ", ".join(sorted(p.name for p in folder.iterdir())[:5])
        return (
            f"{key}={folder} holds files that no ddag run wrote ({shown}, ...); a run would mix "
            f"its records and checkpoints into them. Choose an empty or new folder: "
            f"{key}=<new folder>"
        )
    return None


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` was written by a ddag run or sweep (its lock, Hydra's record, a log or
    one of a task's records)."""
    marks = (LOCK_NAME, ".hydra", "run.log", "multirun.yaml")
    return any((folder / name).exists() for name in marks) or any(
        any(folder.glob(name)) for name in RUN_RECORDS
    )


REPLACED_FOLDER = "replaced"


def held_records(folder: Path) -> list:
    """The names of the run records (`RUN_RECORDS`) that `folder` holds."""

    def held_by(name):
        if "*" in name:
            return sorted(path.name for path in folder.glob(name) if path.is_file())
        path = folder / name
        return [name] if path.is_file() or (path.is_dir() and any(path.iterdir())) else []

    return [found for name in RUN_RECORDS for found in held_by(name)]


def set_aside_replaced_run(folder: Path) -> Path:
    """Move everything of the run `folder` holds (but its lock and earlier replaced runs) into
    `folder/replaced/<time>/`, so the run that replaces it (overwrite=true) writes into a clean
    folder: its results never stand beside the old checkpoints, and nothing is deleted."""
    aside = folder / REPLACED_FOLDER / time.strftime("%Y%m%d-%H%M%S")
    while aside.exists():
        aside = aside.with_name(aside.name + "+")
    aside.mkdir(parents=True)
    for entry in folder.iterdir():
        if entry.name not in (LOCK_NAME, REPLACED_FOLDER):
            entry.rename(aside / entry.name)
    return aside


def finished_run_refusal(folder: Path, key: str, resuming: bool, overwrite: bool):
    """Why a new run must not write into `folder`, which holds a run's checkpoints or results
    (unless it resumes that run with task.resume=auto, or overwrite=true says to replace it)."""
    held = held_records(folder)
    if held and not (resuming or overwrite):
        return (
            f"{key}={folder} already holds a run ({', '.join(held)}); this run would replace "
            "them. Continue that run with task.resume=auto, use a new folder, or replace it on "
            "purpose with overwrite=true"
        )
    return None


def _owns_folders() -> bool:
    """Whether this process checks and locks run folders: not ranks other than 0 of an msrun
    job, nor its scheduler process (which runs this script too)."""
    return current_rank() == 0 and os.environ.get("MS_ROLE") != "MS_SCHED"


class OutputFolderLock(Callback):
    """Holds an exclusive lock on the run (or sweep) folder for the life of the process.

    Taken before Hydra writes anything into the folder, so a second run pointed at a folder a
    live run holds stops with a message instead of mixing configs, checkpoints and results.
    The operating system releases the lock when the process ends, however it ends. Ranks other
    than 0 of an msrun job, and its scheduler process (which runs this script too), share rank
    0's folder and take no lock.
    """

    def __init__(self):
        self._handles = []
        self._notes = []

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        for note in self._notes:  # now that the job's run.log is open
            log.warning(note)
        self._notes = []

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.run.dir))
        if (folder.parent / "multirun.yaml").is_file():  # a job folder of a sweep
            self._refuse_live(folder, folder.parent, "hydra.run.dir")
        self._lock(folder, "hydra.run.dir", config, [folder])
        # paths.output_dir set to another folder receives the checkpoints and results: the
        # same refusals and lock apply there.
        chosen = OmegaConf.select(config, "paths.output_dir", throw_on_resolution_failure=False)
        raw = OmegaConf.to_container(config.paths, resolve=False).get("output_dir")
        if chosen and "${" not in str(raw) and Path(chosen).resolve() != folder.resolve():
            self._lock(Path(chosen), "paths.output_dir", config, [Path(chosen)])

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        jobs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        for job in jobs:  # a single run started in one of its job folders
            self._refuse_live(job, job, "hydra.sweep.dir")
        self._lock(folder, "hydra.sweep.dir", config, [folder, *jobs])

    @staticmethod
    def _refuse_live(folder: Path, holder_folder: Path, key: str) -> None:
        holder = live_holder(holder_folder / LOCK_NAME)
        if holder is None or not _owns_folders():
            return
        what = "a live run" if folder == holder_folder else f"the live sweep in {holder_folder}"
        log.error(
            "ConfigError: %s is in use by %s (%s): both would write its checkpoints and "
            "results. Wait for it to finish, or give this one its own folder: %s=<new folder>",
            folder,
            what,
            holder,
            key,
        )
        sys.exit(1)

    def _lock(self, folder: Path, key: str, config: DictConfig, records) -> None:
        """Refuse a file or dataset root, lock the folder (or stop: a live run holds it), then
        refuse a finished run's folder; the order gives the most precise message."""
        if not _owns_folders():
            return
        refusal = place_refusal(folder, key)
        if refusal:
            log.error("ConfigError: %s", refusal)
            sys.exit(1)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            handle, holder = try_lock(folder / LOCK_NAME)
        except UnsafeLockFile as err:
            log.error("ConfigError: %s refused: %s", folder, err)
            sys.exit(1)
        if handle is None:
            log.error(
                "ConfigError: %s is in use by a live run (%s). Wait for it to finish, or give "
                "this run its own folder: %s=<new folder>",
                folder,
                holder,
                key,
            )
            sys.exit(1)
        resuming = str(config.get("task", {}).get("resume")) == "auto"
        overwrite = bool(config.get("overwrite", False))
        for place in records:
            refusal = finished_run_refusal(place, key, resuming, overwrite)
            if refusal:
                handle.close()
                log.error("ConfigError: %s", refusal)
                sys.exit(1)
        self._note_abrupt_end(folder, getattr(handle, "previous", ""))
        (folder / NOT_FINISHED_MARKER).unlink(missing_ok=True)  # this run starts it again
        atexit.register(mark_ended, handle)
        if overwrite and not resuming and any(held_records(place) for place in records):
            aside = set_aside_replaced_run(folder)
            log.warning("overwrite=true: the run %s held was moved to %s", folder, aside)
        self._handles.append(handle)

    def _note_abrupt_end(self, folder: Path, previous: str) -> None:
        """Say that the process that last ran in `folder` died at once, and when (its run.log,
        which then ends mid-line, is closed with a line break first)."""
        ended = abrupt_end(previous)
        if ended is None:
            return
        pid, started = ended
        run_log, last = folder / "run.log", "an unknown time"
        if run_log.is_file() and not run_log.is_symlink():
            last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run_log.stat().st_mtime))
            fd = os.open(run_log, os.O_RDWR | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb+") as text:
                size = text.seek(0, os.SEEK_END)
                if size:
                    text.seek(size - 1)
                    if text.read(1) != b"\n":  # the dead process's last line ended mid-way
                        text.write(b"\n")
        self._notes.append(
            f"the previous process in {folder} (pid {pid}, started {started}) died without "
            f"closing its run, last writing to run.log at {last}: it was killed by a signal "
            "(SIGKILL, SIGSEGV, the out-of-memory killer) or the machine stopped. Its last "
            "checkpoint is what a resume continues from"
        )


def finished_jobs(sweep_dir: Path) -> list:
    """(job folder, setting, records) of every job of a sweep that wrote results.json."""
    jobs = []
    for results in sorted(sweep_dir.rglob("results.json")):
        folder = results.parent
        try:
            records = json.loads(results.read_text())
            overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) or []
        except (OSError, ValueError, yaml.YAMLError):
            continue  # not a job of this sweep, or damaged: nothing to summarise
        if isinstance(records, list) and isinstance(overrides, list):
            jobs.append((str(folder), setting_of([str(o) for o in overrides]), records))
    return jobs


class SweepSummary(Callback):
    """After a multirun, mean ± std over the jobs that differ only in seed (and RegDB trial),
    printed and written as summary.md / summary.json in the sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = finished_jobs(sweep_dir) if sweep_dir.is_dir() else []
        failed = failed_jobs(sweep_dir) if sweep_dir.is_dir() else []
        if not jobs and not failed:
            return
        summary = summarize(jobs)
        paths = write_summary(summary, sweep_dir, failed)
        log.info(
            "sweep summary over %d job(s) (%d failed), written to %s:\n%s",
            len(jobs),
            len(failed),
            paths[1],
            summary_markdown(summary, failed),
        )


def failed_jobs(sweep_dir: Path) -> list:
    """ "<job folder>: <error>" of every job of a sweep that left a FAILED file."""
    return [f"{m.parent}: {m.read_text().strip()}" for m in sorted(sweep_dir.rglob(FAILED_MARKER))]


class FailedJobsReport(Callback):
    """After a multirun, list the jobs that failed (their directories hold a FAILED file) and
    end the process with status 1, so scripts and schedulers see that the sweep failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = failed_jobs(sweep_dir)
        if failed:
            log.error(
                "%d job(s) of the sweep failed; the others' results are kept and summarised "
                "in summary.md:\n%s",
                len(failed),
                "\n".join(f"  {line}" for line in failed),
            )
            sys.exit(1)
