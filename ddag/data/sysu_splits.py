"""The SYSU-MM01 authors' fixed evaluation splits: `rand_perm_cam.mat` and `test_id.mat`.

Both files come with the authors' MATLAB evaluation (github.com/wuancong/SYSU-MM01,
`evaluation/data_split/`), not with the image archive. `rand_perm_cam{cam}{id}(trial, :)` is a
1-based permutation of the images of identity `id` in camera `cam`, numbered in file-name order;
an identity absent from a camera has an empty cell. `test_id.mat` holds the 96 test identities
as `id`. Both are MATLAB v5 files, read here with scipy into plain arrays and checked, so a
malformed or foreign file is refused with a one-paragraph error instead of failing later.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ddag.data.matfile import MatFileProblem, read_mat_variable
from ddag.errors import DatasetError

SPLITS_URL = "https://raw.githubusercontent.com/wuancong/SYSU-MM01/master/evaluation/data_split/"
SPLIT_FILES = {
    "rand_perm_cam.mat": "90402382dd587e05b615dcee35637fee9ad61e56e26ac86988a00a43997ac0a7",
    "test_id.mat": "6aea5e85cabe88cdf473c7c8b517c779f2b8cf1df4335f275a9d7ed7bc4a9c54",
}
CAMERAS = (1, 2, 3, 4, 5, 6)
# The published file is 291 KiB; a split file of more than this (on disk or inflated) is not one.
MAX_FILE_BYTES = 16 << 20
MAX_INFLATED_BYTES = 64 << 20
MAX_IDENTITIES = 100_000
# The published file has 10 trials; every trial is a full evaluation pass.
MAX_TRIALS = 100


def where_to_get(split_dir: Path) -> str:
    """The sentence every missing-split-file message ends with."""
    return (
        "The files are not in the SYSU-MM01 image archive: they come with the dataset authors' "
        f"MATLAB evaluation, {SPLITS_URL}rand_perm_cam.mat (sha256 "
        f"{SPLIT_FILES['rand_perm_cam.mat']}) and test_id.mat. Put them into {split_dir}, or let "
        "ddag download and check them once: python run.py task=prepare dataset=sysu "
        f"task.mode=fetch_splits task.split_dir={split_dir}"
    )


@dataclass(frozen=True)
class OfficialSplits:
    """The fixed permutations of the official protocol, as 0-based index arrays.

    Attributes:
        permutations: camera -> identity -> (trials, images) int64 array; only identities
            with images in that camera are present.
        test_ids: the test identities of test_id.mat, ascending; None when it was not found.
        trials: rows of every permutation (10 in the published file).
        path: the rand_perm_cam.mat file read.
        cell_lengths: camera -> length of its cell vector (the highest identity number it
            covers; a camera's feature file has as many cells).
    """

    permutations: Dict[int, Dict[int, np.ndarray]]
    test_ids: Optional[np.ndarray]
    trials: int
    path: Path
    cell_lengths: Dict[int, int]

    def permutation(self, cam: int, identity: int, trial: int) -> Optional[np.ndarray]:
        """0-based image order of `identity` in `cam` for `trial` (0-based); None if absent."""
        table = self.permutations.get(cam, {}).get(int(identity))
        return None if table is None else table[trial]

    def image_count(self, cam: int, identity: int) -> int:
        table = self.permutations.get(cam, {}).get(int(identity))
        return 0 if table is None else table.shape[1]


def read_official_splits(split_dir) -> OfficialSplits:
    """Read `rand_perm_cam.mat` (required) and `test_id.mat` (optional) from `split_dir`."""
    split_dir = Path(split_dir)
    path = split_dir / "rand_perm_cam.mat"
    if not path.is_file():
        raise DatasetError(
            f"the official SYSU-MM01 protocol needs {path}, which does not exist. "
            + where_to_get(split_dir)
        )
    cells = _load_variable(path, "rand_perm_cam")
    if cells.dtype != object or cells.size != len(CAMERAS):
        raise _malformed(path, f"rand_perm_cam must be a 6-camera cell array, not {_kind(cells)}")
    permutations, trials, lengths = {}, set(), {}
    for cam, per_identity in zip(CAMERAS, cells.reshape(-1, order="F")):
        per_identity = np.asarray(per_identity)
        if per_identity.dtype != object or per_identity.ndim > 2 or min(per_identity.shape) > 1:
            raise _malformed(
                path, f"rand_perm_cam{{{cam}}} must be a cell vector, got {_kind(per_identity)}"
            )
        if per_identity.size > MAX_IDENTITIES:
            raise _malformed(path, f"rand_perm_cam{{{cam}}} has {per_identity.size} identities")
        permutations[cam], lengths[cam] = {}, int(per_identity.size)
        for index, table in enumerate(per_identity.reshape(-1)):
            table = _permutation_table(path, cam, index + 1, table)
            if table is not None:
                permutations[cam][index + 1] = table
                trials.add(table.shape[0])
    if len(trials) != 1:
        raise _malformed(
            path,
            "every permutation must have the same number of trials (rows); found "
            + (", ".join(str(t) for t in sorted(trials)) or "no permutation at all"),
        )
    count = trials.pop()
    if count > MAX_TRIALS:
        raise _malformed(
            path, f"it declares {count} trials; the published file has 10, at most {MAX_TRIALS}"
        )
    test_ids = _read_test_ids(split_dir)
    if test_ids is not None:
        placed = set().union(*(set(per_id) for per_id in permutations.values()))
        unplaced = [int(i) for i in test_ids if int(i) not in placed]
        if unplaced:
            shown = ", ".join(str(i) for i in unplaced[:10]) + (
                " ..." if len(unplaced) > 10 else ""
            )
            raise _malformed(
                split_dir / "test_id.mat",
                f"it lists {len(unplaced)} identities that have no image in any camera of "
                f"rand_perm_cam.mat ({shown}); the two files do not belong together",
            )
    return OfficialSplits(permutations, test_ids, count, path, lengths)


def _permutation_table(path: Path, cam: int, identity: int, table) -> Optional[np.ndarray]:
    """One identity's (trials, images) table as 0-based int64, None when empty; checked."""
    table = np.asarray(table)
    where = f"rand_perm_cam{{{cam}}}{{{identity}}}"
    if table.size == 0:
        return None
    if table.dtype == object or table.ndim != 2 or not np.issubdtype(table.dtype, np.number):
        raise _malformed(
            path, f"{where} must be a numeric trials x images matrix, got {_kind(table)}"
        )
    values = table.astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise _malformed(path, f"{where} holds values that are not image numbers")
    values = values.astype(np.int64)
    expected = np.arange(1, values.shape[1] + 1)
    if not np.array_equal(np.sort(values, axis=1), np.broadcast_to(expected, values.shape)):
        raise _malformed(path, f"a row of {where} is not a permutation of 1..{values.shape[1]}")
    return values - 1


def _read_test_ids(split_dir: Path) -> Optional[np.ndarray]:
    path = split_dir / "test_id.mat"
    if not path.is_file():
        return None
    ids = np.asarray(_load_variable(path, "id", kind="numeric"))
    if ids.dtype == object or not np.issubdtype(ids.dtype, np.number) or ids.size == 0:
        raise _malformed(path, f"id must be a numeric vector of identities, got {_kind(ids)}")
    values = ids.astype(np.float64).reshape(-1)
    if np.any(values != np.round(values)) or np.any(values < 1) or len(set(values)) != len(values):
        raise _malformed(path, "id must hold distinct positive identity numbers")
    return np.sort(values.astype(np.int64))


def _load_variable(path: Path, name: str, kind: str = "cell") -> np.ndarray:
    try:
        return read_mat_variable(path, name, MAX_FILE_BYTES, MAX_INFLATED_BYTES, kind)
    except MatFileProblem as problem:
        raise _malformed(path, str(problem)) from None


def _kind(array: np.ndarray) -> str:
    return f"a {'x'.join(str(n) for n in array.shape)} {array.dtype} array"


def _malformed(path: Path, problem: str) -> DatasetError:
    return DatasetError(
        f"{path} is not a usable SYSU-MM01 split file: {problem}. " + where_to_get(path.parent)
    )
