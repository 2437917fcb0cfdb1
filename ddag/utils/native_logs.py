"""MindSpore's own log lines into the run's log file, off the console.

MindSpore's C++ runtime writes its log lines (glog: `[WARNING] SESSION(pid,tid,python):time
[file:line] function] message`) straight to the process's stderr, file descriptor 2, whatever
Python's logging says. `NativeLogRouter` puts a pipe on descriptor 2. A small drain process reads
it: MindSpore ERROR lines and everything else (Python's warnings and tracebacks, other
libraries) go on to the console's stderr unchanged, and MindSpore lines are handed back to a
thread here that writes them to the run's log file (the `mindspore` logger, through the file
handlers `attach` is given). The drain is a process of its own so that the last words of a
process that dies at once (os._exit, abort, SIGKILL) still reach the console: it reads the pipe
to its end whatever happens here. Lines that arrive before `attach`
(while MindSpore loads, before Hydra sets up the run folder) are kept and written on attaching;
lines never attached reach the console when the process ends, so nothing is lost.
`runtime.log_level` still chooses which lines MindSpore emits (`ddag/utils/mindspore_logs.py`).
"""

import atexit
import faulthandler
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
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
        self._drain: Optional[subprocess.Popen] = None

    @property
    def active(self) -> bool:
        return self._console is not None

    def start(self) -> "NativeLogRouter":
        """Put the pipe on descriptor 2 (once) and start the drain; stopped again at exit."""
        if self.active:
            return self
        console = os.dup(2)
        read_end, write_end = os.pipe()
        forward_read, forward_write = os.pipe()
        try:
            drain = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _DRAIN_CODE, str(Path(__file__).parents[2])]
                + [str(fd) for fd in (read_end, console, forward_write, self.console_level)],
                pass_fds=(read_end, console, forward_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=console,
            )
        except OSError:  # no process to spare: MindSpore's lines stay on the console
            for fd in (console, read_end, write_end, forward_read, forward_write):
                os.close(fd)
            return self
        os.close(read_end)  # the drain's ends now
        os.close(forward_write)
        self._drain, self._console = drain, console
        os.dup2(write_end, 2)
        os.close(write_end)
        # A crash's traceback (faulthandler) must not depend on the drain.
        faulthandler.enable(file=os.fdopen(os.dup(self._console), "w"), all_threads=True)
        self._thread = threading.Thread(
            target=self._pump, args=(forward_read,), name="native-log-router", daemon=True
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
        try:
            self._drain.wait(timeout=5)  # it ends when every writer (children too) has closed
        except subprocess.TimeoutExpired:
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            pending, self._pending = self._pending, []
        for raw in pending:  # never attached: the ones the console has not shown yet
            if _level(raw) < self.console_level:
                os.write(2, raw)
        os.close(console)

    def _pump(self, forward_read: int) -> None:
        with os.fdopen(forward_read, "rb") as pipe:
            for raw in iter(pipe.readline, b""):
                self._route(raw)

    def _to_console(self, raw: bytes) -> None:
        console = self._console
        os.write(console if console is not None else 2, raw)

    def _route(self, raw: bytes) -> None:
        """One MindSpore line handed back by the drain (which has shown it if it is an error)."""
        with self._lock:
            if self._handlers is None:
                if len(self._pending) < MAX_PENDING:
                    self._pending.append(raw)
                elif _level(raw) < self.console_level:
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


def drain(source: int, console: int, forward: int, console_level: int) -> None:
    """The drain process's loop: every line of `source` to `console` (MindSpore's below
    `console_level` excepted) and MindSpore's lines to `forward`, until every writer has
    closed `source`. Signals that stop the run do not stop the drain: it ends with the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pending, forwarding = b"", True
    while True:
        chunk = os.read(source, 1 << 16)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if chunk else b""
        for raw in [line + b"\n" for line in lines if chunk or line]:
            level = _level(raw)
            if level is None or level >= console_level:
                _write_all(console, raw)
            if level is not None and forwarding:
                try:
                    _write_all(forward, raw)
                except OSError:  # the router's process has ended: the console still gets errors
                    forwarding = False
        if not chunk:
            return


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


_DRAIN_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from ddag.utils.native_logs import drain; drain(*map(int, sys.argv[2:6]))"
)


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
