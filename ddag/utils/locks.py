"""Exclusive, non-blocking file locks that name their holder (released when the process ends)."""

import fcntl
import os
from pathlib import Path
from typing import IO, Optional, Tuple


def try_lock(path: Path) -> Tuple[Optional[IO], str]:
    """(open handle holding the lock, "") or (None, who holds it); the lock file records our
    pid while we hold it."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        return None, holder
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle, ""
