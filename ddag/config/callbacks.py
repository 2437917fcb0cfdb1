"""Hydra callbacks: a sweep's end report of failed jobs."""

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ddag.evaluation.tables import FAILED_MARKER
from ddag.utils.logging import get_logger

log = get_logger(__name__)


class FailedJobsReport(Callback):
    """After a multirun, list the jobs that failed (their directories hold a FAILED file)."""

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
