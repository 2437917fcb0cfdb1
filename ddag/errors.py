"""Project exceptions.

Each one carries a message that names the bad thing and the fix; `run.py` prints it as one
paragraph instead of a traceback.
"""

# File a failed job of a sweep leaves in its run folder, holding the error (run.py writes it;
# the sweep's end report and task=table look for it).
FAILED_MARKER = "FAILED"
# A run folder whose run was stopped before it wrote anything but its config and log.
NOT_FINISHED_MARKER = "NOT_FINISHED"


class DdagError(Exception):
    """Base class of every error ddag reports to the user."""


class ConfigError(DdagError):
    """A configuration key is unknown, mistyped or inconsistent."""


class DatasetError(DdagError):
    """Data is missing, unreadable or does not match the expected layout."""


class CheckpointError(DdagError):
    """A checkpoint is missing, corrupt or does not fit the model."""


class DeviceError(DdagError):
    """The requested device target is not available on this machine."""


class TrainingError(DdagError):
    """Training cannot continue (for example the loss became non-finite)."""


class EvaluationError(DdagError):
    """Inputs to an evaluation do not fit together."""


class Interrupted(TrainingError):
    """The user stopped a run (Ctrl-C); the message says how to resume."""
