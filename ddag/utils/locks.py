"""Exclusive, non-blocking file locks that name their holder (released when the process ends).

The lock file is opened without following a symbolic link (`O_NOFOLLOW`) and must be a regular
file: a link planted in a run folder cannot make the lock write into another file.
"""

import fcntl
import os
import re
import stat
import time
from pathlib import Path
from typing import IO, Optional, Tuple


class UnsafeLockFile(OSError):
    """The lock's path is a symbolic link or not a regular file."""


def _open_lock(path: Path) -> IO:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        if os.path.islink(path):
            raise UnsafeLockFile(
                f"{path} is a symbolic link; a lock file must be a plain file. Remove the link"
            ) from err
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeLockFile(f"{path} is not a regular file; remove it")
    return os.fdopen(fd, "r+")


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def try_lock(path: Path) -> Tuple[Optional[IO], str]:
    """(open handle holding the lock, "") or (None, who holds it); the lock file records our
    pid and start time while we hold it (and `mark_ended` the end). What it held before is on
    `handle.previous`. UnsafeLockFile when the path is a link or not a regular file."""
    handle = _open_lock(Path(path))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read(200).strip() or "another process"
        handle.close()
        return None, holder
    handle.seek(0)
    handle.previous = handle.read(200)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} started {_now()}\n")
    handle.flush()
    return handle, ""


def live_holder(path: Path) -> Optional[str]:
    """Who holds the lock at `path` now ("pid N ..."), or None when no live process does (no
    lock file, a link or other non-file, or a lock left by a process that has ended)."""
    path = Path(path)
    if not path.is_file() or path.is_symlink():
        return None
    try:
        handle = _open_lock(path)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = handle.read(200).strip()
            return text.splitlines()[0] if text else "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def mark_ended(handle: IO) -> None:
    """Record on a held lock that its process ended through Python (normally, by an error or by
    a handled signal); a lock without it was left by a process that died at once."""
    try:
        handle.write(f"ended {_now()}\n")
        handle.flush()
    except (OSError, ValueError):
        pass


def abrupt_end(previous: str) -> Optional[Tuple[str, str]]:
    """(pid, start time) of the process that held a lock before, when it did not end through
    Python: killed by a signal such as SIGKILL or SIGSEGV, out of memory, or the machine
    stopped. None when it ended cleanly or the record predates start times."""
    found = re.match(r"pid (\d+) started ([\d-]+ [\d:]+)\n", previous or "")
    if not found or "ended " in previous:
        return None
    return found.group(1), found.group(2)
