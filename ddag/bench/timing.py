"""Timing with progress lines: a long measurement says what it is doing."""

import statistics
import time

from ddag.utils.logging import get_logger

log = get_logger(__name__)

PROGRESS_SECONDS = 10.0  # a progress line at most this often during a long measurement


def repeat_timed(fn, repeats: int, warmup: int, label: str = "measurement"):
    """min/median/max seconds of `repeats` calls after `warmup` ones, with progress lines."""
    started = last = time.perf_counter()
    for index in range(warmup):
        fn()
        if time.perf_counter() - last > PROGRESS_SECONDS:
            last = time.perf_counter()
            log.info("  %s: warm-up %d/%d (%.0f s)", label, index + 1, warmup, last - started)
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if time.perf_counter() - last > PROGRESS_SECONDS:
            last = time.perf_counter()
            log.info(
                "  %s: run %d/%d, %.2f s each (%.0f s so far)",
                label,
                index + 1,
                repeats,
                statistics.median(times),
                last - started,
            )
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}
