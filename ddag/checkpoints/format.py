"""The checkpoint file format: tensors, a JSON text and a tensor checksum in one MindSpore
`.ckpt`, written atomically; copying tensors into a network with a readable report.

What the JSON says is `ddag.checkpoints.meta.CheckpointMeta`: `save_checkpoint` and
`read_checkpoint` are its one writer and reader.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import mindspore as ms
import numpy as np

from ddag.checkpoints.meta import CheckpointMeta
from ddag.errors import CheckpointError

META_KEY = "ddag_meta"
DIGEST_KEY = "ddag_sha256"
TEMP_SUFFIX = ".tmp.ckpt"
CHECKPOINT_MODE = 0o640  # the owner writes, the owner's group may read (a shared lab folder)


@dataclass
class LoadReport:
    """What a checkpoint load matched. Names are the network's."""

    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 8) -> str:
        def head(items):
            shown = ", ".join(str(i) for i in items[:limit])
            return shown + (f" ... (+{len(items) - limit} more)" if len(items) > limit else "")

        lines = [f"loaded {len(self.loaded)} parameters"]
        if self.missing:
            lines.append(f"missing from checkpoint ({len(self.missing)}): {head(self.missing)}")
        if self.unexpected:
            lines.append(
                f"unexpected in checkpoint ({len(self.unexpected)}): {head(self.unexpected)}"
            )
        if self.mismatched:
            shapes = [f"{n} checkpoint {c} vs model {m}" for n, c, m in self.mismatched]
            lines.append(f"shape mismatch ({len(self.mismatched)}): {head(shapes)}")
        return "; ".join(lines)


def parameter_digest(named_arrays) -> str:
    """sha256 over (name, dtype, shape, bytes) of every array, in name order."""
    digest = hashlib.sha256()
    for name, array in sorted(named_arrays, key=lambda item: item[0]):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _mindspore_temporary(path) -> Path:
    """The file MindSpore writes before renaming it to `path` (`x.ckpt` -> `x.tmp`)."""
    path = Path(path)
    return path.with_name(path.name[: -len(".ckpt")] + ".tmp")


def remove_stale_temporaries(folder) -> List[Path]:
    """Delete temporary files that an interrupted checkpoint write left in `folder`: ours
    (`*.tmp.ckpt`) and MindSpore's own (`*.tmp.tmp`, left by a full disk or a kill)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f"*{TEMP_SUFFIX}")) + sorted(
        folder.glob(f"*{_mindspore_temporary(TEMP_SUFFIX).name}")
    )
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_checkpoint_file(path, network, optimizer=None, meta: Optional[dict] = None) -> Path:
    """Write network (+ optimiser state) and JSON metadata atomically: temp file, then rename.

    The file also holds a sha256 of every tensor (checked by `read_checkpoint_file`); it is flushed
    to disk before the rename, so after a crash `path` is either the old or the new checkpoint.
    A failed write (full disk) raises CheckpointError and leaves the previous `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    entries = [{"name": p.name, "data": p} for p in network.get_parameters()]
    if optimizer is not None:
        seen = {e["name"] for e in entries}
        entries += [
            {"name": f"optimizer.{p.name}", "data": p}
            for p in optimizer.get_parameters()
            if p.name not in seen
        ]
    digest = parameter_digest((e["name"], e["data"].asnumpy()) for e in entries)
    # The ".ckpt" suffix keeps MindSpore from appending one of its own to the temporary name.
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        ms.save_checkpoint(
            entries, tmp, append_dict={META_KEY: json.dumps(meta or {}), DIGEST_KEY: digest}
        )
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, CHECKPOINT_MODE)  # MindSpore leaves its files readable by the owner only
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except (OSError, RuntimeError, ValueError) as err:
        free = shutil.disk_usage(path.parent).free / 2**20
        kept = f"{path} still holds the previous checkpoint" if path.is_file() else "nothing lost"
        raise CheckpointError(
            f"could not write checkpoint {path}: {err}. {free:.0f} MiB free on that disk; "
            f"{kept}. Free space (or set hydra.run.dir on another disk) and resume"
        ) from err
    finally:
        for leftover in (Path(tmp), _mindspore_temporary(tmp)):
            leftover.unlink(missing_ok=True)
    return path


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename inside it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint_file(path) -> Tuple[Dict[str, ms.Parameter], dict]:
    """(parameters by name, metadata dict) of a checkpoint file; CheckpointError if unreadable.

    ddag checkpoints carry a sha256 of their tensors: a file whose bytes changed after it was
    written (a flipped bit, a partial copy) is refused. Files without one (the model zoo's)
    load as they are.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        params = ms.load_checkpoint(str(path))
    except Exception as err:  # MindSpore raises ValueError/RuntimeError for corrupt files
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated or not a MindSpore checkpoint ({err})"
        ) from err
    meta = params.pop(META_KEY, None)
    digest = params.pop(DIGEST_KEY, None)
    if isinstance(digest, str):
        actual = parameter_digest((name, p.asnumpy()) for name, p in params.items())
        if actual != digest:
            raise CheckpointError(
                f"checkpoint {path} is damaged: its tensors do not match the checksum written "
                "with them (changed bytes or an incomplete copy). Copy it again or use another"
            )
    if not isinstance(meta, str):
        return params, {}
    try:
        meta = json.loads(meta)
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: its metadata is not JSON ({err})") from None
    except (RecursionError, MemoryError) as err:
        raise CheckpointError(
            f"checkpoint {path}: its metadata is nested too deeply or too large to read "
            f"({type(err).__name__}); the file is damaged or crafted"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: its metadata is not a mapping")
    return params, meta


def save_checkpoint(path, network, optimizer=None, meta: Optional[CheckpointMeta] = None) -> Path:
    """Write `network` (+ `optimizer` state) and `meta` atomically to `path`."""
    data = (meta or CheckpointMeta()).to_dict()
    return write_checkpoint_file(path, network, optimizer, data)


def read_checkpoint(path) -> Tuple[Dict, CheckpointMeta]:
    """(parameters by name, metadata in today's format) of a ddag or model-zoo checkpoint."""
    params, raw = read_checkpoint_file(path)
    try:
        return params, CheckpointMeta.from_dict(raw)
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None


def load_into(
    network,
    params: Dict[str, object],
    strict: bool = True,
    rename=None,
    optimizer=None,
    ignore_missing: Tuple[str, ...] = (),
    scope: Tuple[str, ...] = ("",),
) -> LoadReport:
    """Copy `params` (MindSpore parameters or numpy arrays by name) into `network` (and
    optimiser state) and report what matched.

    Nothing is copied when `strict` and the checkpoint does not fit, so a failed load leaves the
    network untouched.

    Args:
        rename: optional function checkpoint name -> network name (None drops the entry).
        strict: raise CheckpointError unless every network parameter is loaded with its shape.
        optimizer: also restore the optimiser state saved under "optimizer.*".
        ignore_missing: prefixes of network parameters the file is not expected to hold (they
            keep their initial values and are not reported missing).
        scope: prefixes of the network parameters the file is to fill (initial weights fill the
            backbone only); the others are not reported missing.
    """
    report = LoadReport()
    model_params = {p.name: p for p in network.get_parameters()}
    optimizer_params = (
        {f"optimizer.{p.name}": p for p in optimizer.get_parameters()} if optimizer else {}
    )
    to_copy = []
    for name, value in params.items():
        if name.startswith("optimizer."):
            target = optimizer_params.get(name)
            if target is not None and tuple(target.shape) == tuple(value.shape):
                to_copy.append((target, value))
            continue
        ours = rename(name) if rename else name
        if ours is None:
            continue
        target = model_params.get(ours)
        if target is None:
            report.unexpected.append(name)
        elif tuple(target.shape) != tuple(value.shape):
            report.mismatched.append((ours, tuple(value.shape), tuple(target.shape)))
        else:
            report.loaded.append(ours)
            to_copy.append((target, value))
    unmatched = set(model_params) - set(report.loaded) - {m[0] for m in report.mismatched}
    report.missing = sorted(
        n for n in unmatched if n.startswith(scope) and not n.startswith(ignore_missing)
    )
    if strict and not report.ok:
        raise CheckpointError(f"checkpoint does not fit the model: {report.summary()}")
    arrays = [(target, checked_values(target, _as_array(value))) for target, value in to_copy]
    for target, array in arrays:
        target.set_data(ms.Tensor(array, dtype=target.dtype))
    return report


def checked_values(target, array: np.ndarray) -> np.ndarray:
    """`array` if it may become floating parameter `target`: a real floating dtype (not bool,
    integer or complex, which would load as 0/1 or lose their imaginary part) and finite
    values (NaN weights train at chance with finite-looking losses)."""
    if target.dtype in (ms.float16, ms.float32, ms.float64, ms.bfloat16):
        if array.dtype.kind != "f":
            raise CheckpointError(
                f"tensor {target.name} holds {array.dtype} values for a floating parameter; "
                "the file is damaged or not a weight file of this network"
            )
        if not np.all(np.isfinite(array)):
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise CheckpointError(
                f"tensor {target.name} holds {bad} NaN or infinite values: the run that wrote "
                "it diverged or the file is damaged; use an earlier checkpoint"
            )
    return array


def _as_array(value) -> np.ndarray:
    return np.asarray(value.asnumpy() if hasattr(value, "asnumpy") else value)
