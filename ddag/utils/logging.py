"""Rank-aware logging: only rank 0 speaks unless asked otherwise."""

import logging
import os


def current_rank() -> int:
    """Rank of this process in a distributed job (0 when not distributed)."""
    for key in ("RANK_ID", "RANK", "OMPI_COMM_WORLD_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


class _RankFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return current_rank() == 0


def get_logger(name: str, all_ranks: bool = False) -> logging.Logger:
    """Logger named `name` that logs on rank 0 only (or on all ranks)."""
    logger = logging.getLogger(name)
    if not all_ranks and not any(isinstance(f, _RankFilter) for f in logger.filters):
        logger.addFilter(_RankFilter())
    return logger
