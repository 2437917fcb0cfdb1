"""Exclusive, non-blocking file locks that name their holder (released when the process ends).

The lock file is opened without following a symbolic link (`O_NOFOLLOW`) and must be a regular
file: a link planted in a run folder cannot make the lock write into another file.
"""

import fcntl
import os
import stat
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


def try_lock(path: Path) -> Tuple[Optional[IO], str]:
    """(open handle holding the lock, "") or (None, who holds it); the lock file records our
    pid while we hold it. UnsafeLockFile when the path is a link or not a regular file."""
    handle = _open_lock(Path(path))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read(200).strip() or "another process"
        handle.close()
        return None, holder
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle, ""
