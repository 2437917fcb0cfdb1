"""SYSU-MM01 preparation: decode and resize the training images once, pack them into arrays.

Writes the reference's files (`train_{rgb,ir}_resized_{img,label}.npy`) at the configured size,
with Lanczos resampling (the reference's Image.ANTIALIAS, removed in Pillow 10). Work is done in
chunks kept under `<root>/.ddag_prepare/`, so an interrupted run resumes where it stopped; each
file is written to a temporary name of its own and renamed, so nothing is ever half-written,
and a lock on the root keeps a second `task=prepare` of the same root from racing this one.
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ddag.data.datasets.base import ImageSet
from ddag.data.datasets.sysu import (
    SYSUDataset,
    fingerprint_path,
    prepared_paths,
    split_files_fingerprint,
)
from ddag.errors import DatasetError
from ddag.utils.locks import UnsafeLockFile, try_lock
from ddag.utils.logging import get_logger

log = get_logger(__name__)


LOCK_NAME = ".ddag_prepare.lock"


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary file of its own in the same folder, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp.npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def root_lock(root: Path):
    """An exclusive lock on a dataset root for the duration of its preparation."""
    try:
        handle, holder = try_lock(root / LOCK_NAME)
    except UnsafeLockFile as err:
        raise DatasetError(f"{root} refused: {err}") from None
    if handle is None:
        raise DatasetError(
            f"{root} is being prepared by another task=prepare ({holder}); wait for it to end "
            "(a second one would race it for the same files)"
        )
    try:
        yield
    finally:
        handle.close()


def _pack(images: ImageSet, work: Path, prefix: str, chunk: int) -> np.ndarray:
    """Decode every image in chunks (skipping chunks already on disk) and stack them."""
    chunks = []
    total = len(images)
    for start in range(0, total, chunk):
        path = work / f"{prefix}_{start:07d}.npy"
        if not path.is_file():
            stop = min(start + chunk, total)
            save_atomic(path, np.stack([images.load(i) for i in range(start, stop)]))
            log.info("prepared %s images %d/%d", prefix, stop, total)
        chunks.append(np.load(path))
    return np.concatenate(chunks)


def prepare_sysu(dataset: SYSUDataset, chunk: int = 1000) -> dict:
    """Write the packed training arrays of `dataset` (skipped when already complete)."""
    with root_lock(dataset.root):
        return _prepare_sysu(dataset, chunk)


def _prepare_sysu(dataset: SYSUDataset, chunk: int) -> dict:
    targets = prepared_paths(dataset.root, dataset.merge_val)
    fingerprint = fingerprint_path(dataset.root, dataset.merge_val)
    if dataset.prepared_split() is not None:
        log.info("prepared arrays already present in %s", dataset.root)
        return {name: str(path) for name, path in targets.items()}
    visible, thermal = dataset.decoded_train_sets()
    work = dataset.root / ".ddag_prepare" / f"{dataset.height}x{dataset.width}"
    work.mkdir(parents=True, exist_ok=True)
    for mod, images in (("rgb", visible), ("ir", thermal)):
        packed = _pack(images, work, mod, chunk)
        save_atomic(targets[f"{mod}_label"], images.ids.astype(np.int64))
        save_atomic(targets[f"{mod}_img"], packed)
        log.info("wrote %s (%s)", targets[f"{mod}_img"], packed.shape)
    record = {
        "split_files_sha256": split_files_fingerprint(dataset.root, dataset.merge_val),
        "images_sha256": dataset.train_images_fingerprint(),
        "height": dataset.height,
        "width": dataset.width,
    }
    tmp = fingerprint.with_name(fingerprint.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, fingerprint)
    shutil.rmtree(work.parent)
    return {name: str(path) for name, path in targets.items()}
