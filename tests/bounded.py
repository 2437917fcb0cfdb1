"""Run a refusal in a child Python whose address space may grow only by a set budget.

A regression that allocates what a crafted file asks for then fails with MemoryError in the
child instead of taking the machine; the parent also bounds the time.
"""

import subprocess
import sys
import textwrap
import time

from tests.conftest import ROOT

_PRELUDE = """
import resource

def limit_memory(budget_mb):
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (used + budget_mb * 2**20, used + budget_mb * 2**20))
"""


def run_bounded(code: str, timeout: float = 120.0):
    """(stdout + stderr, seconds) of `code`, which calls limit_memory(MB) after its imports."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.stdout + result.stderr, time.monotonic() - start


def refused(output: str, seconds: float, error: str = "CheckpointError", limit: float = 30.0):
    """Assert that the child printed `REFUSED <error>` within `limit` seconds."""
    assert f"REFUSED {error}" in output, output[-3000:]
    assert seconds < limit, f"took {seconds:.1f} s"
