"""The one writer and reader of ddag checkpoints: tensors plus a `CheckpointMeta`."""

from pathlib import Path
from typing import Dict, Tuple

from ddag.checkpoints.meta import CheckpointMeta
from ddag.errors import CheckpointError
from ddag.io.checkpoint import read_checkpoint_file, write_checkpoint_file


def save_checkpoint(path, network, optimizer=None, meta: CheckpointMeta = None) -> Path:
    """Write `network` (+ `optimizer` state) and `meta` atomically to `path`."""
    data = (meta or CheckpointMeta()).to_dict()
    return write_checkpoint_file(path, network, optimizer, data)


def read_checkpoint(path) -> Tuple[Dict, CheckpointMeta]:
    """(parameters by name, metadata) of a ddag or foreign (model-zoo) MindSpore checkpoint."""
    params, raw = read_checkpoint_file(path)
    try:
        return params, CheckpointMeta.from_dict(raw)
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
