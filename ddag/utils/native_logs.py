"""MindSpore's own log lines into the run's log file, off the console.

MindSpore's C++ runtime writes its log lines (glog: `[WARNING] SESSION(pid,tid,python):time
[file:line] function] message`) straight to the process's stderr, file descriptor 2, whatever
Python's logging says. `NativeLogRouter` puts a pipe on descriptor 2 and reads it in a thread:
MindSpore lines go to the run's log file (the `mindspore` logger, through the file handlers
`attach` is given), MindSpore ERROR lines and everything else (Python's warnings and tracebacks,
other libraries) go on to the console's stderr unchanged. Lines that arrive before `attach`
(while MindSpore loads, before Hydra sets up the run folder) are kept and written on attaching;
lines never attached reach the console when the process ends, so nothing is lost.
`runtime.log_level` still chooses which lines MindSpore emits (`ddag/utils/mindspore_logs.py`).
"""

import atexit
import faulthandler
import logging
import os
import re
import sys
import threading
from typing import List, Optional

NATIVE_LINE = re.compile(rb"^\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] [A-Z][A-Z0-9_]*\(\d+,")
LEVELS = {
    b"DEBUG": logging.DEBUG,
    b"INFO": logging.INFO,
    b"WARNING": logging.WARNING,
    b"ERROR": logging.ERROR,
    b"CRITICAL": logging.CRITICAL,
}
CONSOLE_LEVEL = logging.ERROR  # MindSpore's lines from this level on stay on the console too
MAX_PENDING = 10_000  # lines kept before attaching; a flood beyond goes to the console
LOGGER_NAME = "mindspore"


class NativeLogRouter:
    """Routes what is written to file descriptor 2 (see the module docstring)."""

    def __init__(self, console_level: int = CONSOLE_LEVEL):
        self.console_level = console_level
        self._console: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._handlers: Optional[List[logging.Handler]] = None
        self._pending: List[bytes] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._console is not None

    def start(self) -> "NativeLogRouter":
        """Put the pipe on descriptor 2 (once); stopped again at exit."""
        if self.active:
            return self
        self._console = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        # A crash's traceback (faulthandler) must not depend on the reading thread.
        faulthandler.enable(file=os.fdopen(os.dup(self._console), "w"), all_threads=True)
        self._thread = threading.Thread(
            target=self._pump, args=(read_end,), name="native-log-router", daemon=True
        )
        self._thread.start()
        atexit.register(self.stop)
        return self

    def attach(self, handlers: List[logging.Handler]) -> None:
        """Write MindSpore's lines to `handlers` from now on (the ones held so far first); an
        empty list sends them to the console instead."""
        with self._lock:
            self._handlers = list(handlers)
            pending, self._pending = self._pending, []
            for raw in pending:
                self._deliver(raw)

    def stop(self) -> None:
        """Give descriptor 2 back to the console and write out what is still in the pipe."""
        if not self.active:
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        console, self._console = self._console, None
        os.dup2(console, 2)  # closes the pipe's last write end of this process
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            pending, self._pending = self._pending, []
        for raw in pending:  # never attached: the ones the console has not shown yet
            if _level(raw) < self.console_level:
                os.write(2, raw)
        os.close(console)

    def _pump(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in iter(pipe.readline, b""):
                self._route(raw)

    def _to_console(self, raw: bytes) -> None:
        console = self._console
        os.write(console if console is not None else 2, raw)

    def _route(self, raw: bytes) -> None:
        level = _level(raw)
        shown = level is None or level >= self.console_level
        if shown:
            self._to_console(raw)
        if level is None:
            return
        with self._lock:
            if self._handlers is None:
                if len(self._pending) < MAX_PENDING:
                    self._pending.append(raw)
                elif not shown:
                    self._to_console(raw)
                return
            self._deliver(raw)

    def _deliver(self, raw: bytes) -> None:
        """One MindSpore line to the attached handlers (or the console when there are none)."""
        level = _level(raw)
        if not self._handlers:
            if level < self.console_level:
                self._to_console(raw)
            return
        text = raw.decode("utf-8", "replace").rstrip("\n")
        record = logging.LogRecord(LOGGER_NAME, level, "mindspore", 0, text, None, None)
        for handler in self._handlers:
            if level >= handler.level:
                handler.handle(record)


def _level(raw: bytes) -> Optional[int]:
    """The logging level of a MindSpore log line, None for any other line."""
    match = NATIVE_LINE.match(raw)
    return LEVELS[match.group(1)] if match else None


def run_file_handlers() -> List[logging.Handler]:
    """The root logger's file handlers: Hydra's run.log of the current job."""
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


# Descriptor 2 belongs to the process, so its router does too: one per process.
_PROCESS_ROUTER = NativeLogRouter()


def route_native_logs() -> None:
    """Start this process's router (run.py does, before MindSpore loads)."""
    _PROCESS_ROUTER.start()


def attach_run_log() -> None:
    """Send MindSpore's lines to the current job's run.log from now on (each job of a sweep
    calls it; a launcher's worker process starts its own router here)."""
    _PROCESS_ROUTER.start()
    _PROCESS_ROUTER.attach(run_file_handlers())
