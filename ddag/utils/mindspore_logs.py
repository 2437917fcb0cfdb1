"""MindSpore's own log level (`runtime.log_level`), applied before MindSpore is imported.

MindSpore reads GLOG_v once, when it is first imported, so run.py sets it from the command line
before importing anything else; this module imports nothing that loads MindSpore.
"""

import os
from typing import Optional

# runtime.log_level -> MindSpore's GLOG_v.
LOG_LEVELS = {"debug": "0", "info": "1", "warning": "2", "error": "3"}
LOG_LEVEL_ENV = "GLOG_v"
DEFAULT_LEVEL = "error"  # MindSpore's compiler notes stay off the console


def apply_mindspore_log_level(argv: list, environ=os.environ) -> None:
    """GLOG_v from `runtime.log_level=...` on the command line; without one, the environment's
    GLOG_v, else the default level."""
    given = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("runtime.log_level=")]
    if given and given[-1] in LOG_LEVELS:
        environ[LOG_LEVEL_ENV] = LOG_LEVELS[given[-1]]
    else:
        environ.setdefault(LOG_LEVEL_ENV, LOG_LEVELS[DEFAULT_LEVEL])


def level_mismatch(level: str, environ=os.environ) -> Optional[str]:
    """What to tell when the configured level is not the one MindSpore was loaded with (a
    preset or YAML set it, which is too late), else None."""
    applied = environ.get(LOG_LEVEL_ENV)
    if applied is None or applied == LOG_LEVELS.get(level, applied):
        return None
    return (
        f"MindSpore logs at GLOG_v={applied} (set before it was imported), not at "
        f"runtime.log_level={level}; give runtime.log_level on the command line of run.py to "
        "change it"
    )
