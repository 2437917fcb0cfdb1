"""Features computed elsewhere, read into the split + feature arrays the protocols score.

Two layouts:
- The SYSU-MM01 authors' (wuancong/SYSU-MM01 `evaluation/demo.m`): a prefix P with files
  `P_cam1.mat` .. `P_cam6.mat`, each a cell array `feature` (1 x N or N x 1) in which
  `feature{id}` is an (images x dim) matrix, rows in file-name order, empty for identities the
  camera did not see. Cameras 1, 2, 4, 5 are visible, 3 and 6 thermal. Images are named
  `cam<k>/<id>/<row>` (row 1-based), so sorting names keeps the file order.
- `.npz` files as `task=extract` writes them: `names`, `ids`, `cams`, `modality` (one value, or
  one per row) and the features `fc` and `fc_att` (scored as FC and FC_att) or `features`.
  One file per modality, or one file holding both with a per-row `modality`.
"""

import zipfile
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ddag.data.datasets.base import MODALITIES, ImageSet, Split
from ddag.data.matfile import MatFileProblem, read_mat_variable
from ddag.errors import DatasetError
from ddag.utils.memory import readable_bytes

SYSU_CAMERAS = {"visible": (1, 2, 4, 5), "thermal": (3, 6)}
# A feature file is data the user made; these bound what one may make us allocate.
MAX_FEATURE_FILE_BYTES = 8 << 30
NPZ_FEATURE_KEYS = {"fc": "FC", "fc_att": "FC_att", "features": "feature"}

Features = Dict[str, Dict[str, np.ndarray]]


def read_features(source, cameras: Sequence[int] = (1, 2, 3, 4, 5, 6)) -> Tuple[Features, Split]:
    """(features[modality][name], split) of `source`: a .npz path, a list of them, or the
    prefix of the authors' `_cam<k>.mat` files (of which `cameras` must exist)."""
    paths = _paths(source)
    if not paths:
        raise DatasetError("task.features is empty: give a .npz file, a list of them, or a prefix")
    if is_npz_source(source):
        return read_npz_features([Path(p) for p in paths])
    if len(paths) == 1:
        return read_sysu_mat_features(paths[0], cameras)
    raise DatasetError(
        f"task.features={paths}: a list must hold .npz files only; the authors' layout is one "
        "prefix P (for P_cam1.mat ... P_cam6.mat)"
    )


def _paths(source) -> List[str]:
    return [str(p) for p in source] if isinstance(source, (list, tuple)) else [str(source)]


def is_npz_source(source) -> bool:
    """Whether `source` names task=extract .npz files (else the authors' .mat prefix)."""
    paths = _paths(source)
    return bool(paths) and all(p.endswith(".npz") for p in paths)


def read_sysu_mat_features(prefix: str, cameras: Sequence[int]) -> Tuple[Features, Split]:
    """Features of the authors' layout, `<prefix>_cam<k>.mat` for each camera in `cameras`."""
    name = Path(prefix).name
    per_modality = {m: {"ids": [], "cams": [], "names": [], "rows": []} for m in MODALITIES}
    dims = {}
    for cam in sorted(cameras):
        path = Path(f"{prefix}_cam{cam}.mat")
        if not path.is_file():
            raise DatasetError(
                f"{path} does not exist: the protocols need features of camera {cam}. The "
                "authors' layout is one file per camera, <prefix>_cam1.mat ... _cam6.mat, each "
                "with a cell array 'feature' (feature{id} = images x dim, rows in file-name order)"
            )
        cells = _feature_cells(path)
        modality = "visible" if cam in SYSU_CAMERAS["visible"] else "thermal"
        bucket = per_modality[modality]
        for index, matrix in enumerate(cells):
            matrix = np.asarray(matrix)
            if matrix.size == 0:
                continue
            identity = index + 1
            where = f"{path.name}: feature{{{identity}}}"
            if (
                matrix.dtype == object
                or matrix.ndim != 2
                or not np.issubdtype(matrix.dtype, np.floating)
            ):
                # Logical (0/1) and integer cells would be scored as features, complex ones would
                # lose their imaginary part: only real floating matrices are features.
                raise DatasetError(
                    f"{where} must be a real floating images x dim matrix (single or double), "
                    f"got a {'x'.join(map(str, matrix.shape))} {matrix.dtype} array"
                )
            dims.setdefault(matrix.shape[1], f"{path.name}: feature{{{identity}}}")
            if len(dims) > 1:
                first, other = dims.items()
                raise DatasetError(
                    f"feature dimensions differ: {first[1]} has {first[0]} columns, {other[1]} "
                    f"has {other[0]}; every camera's features must come from one model"
                )
            values = matrix.astype(np.float64)
            if not np.all(np.isfinite(values)):
                raise DatasetError(f"{where} contains NaN or inf; extract the features again")
            bucket["rows"].append(values)
            bucket["ids"] += [identity] * len(values)
            bucket["cams"] += [cam] * len(values)
            bucket["names"] += [
                f"cam{cam}/{identity:04d}/{row + 1:04d}" for row in range(len(values))
            ]
    features, sets = {}, {}
    for modality, bucket in per_modality.items():
        dim = next(iter(dims), 1)
        rows = np.concatenate(bucket["rows"]) if bucket["rows"] else np.zeros((0, dim))
        features[modality] = {name: rows}
        sets[modality] = ImageSet(bucket["ids"], bucket["cams"], bucket["names"])
    return features, Split(visible=sets["visible"], thermal=sets["thermal"])


def _feature_cells(path: Path) -> List:
    try:
        cells = read_mat_variable(path, "feature", MAX_FEATURE_FILE_BYTES, MAX_FEATURE_FILE_BYTES)
    except MatFileProblem as problem:
        raise DatasetError(
            f"{path} is not a feature file of the SYSU-MM01 authors' layout: {problem}. Each "
            "<prefix>_cam<k>.mat holds a cell array 'feature' with feature{id} = images x dim"
        ) from None
    if cells.dtype != object or cells.ndim > 2 or (cells.size and min(cells.shape) > 1):
        raise DatasetError(
            f"{path}: 'feature' must be a 1 x N or N x 1 cell array, got a "
            f"{'x'.join(map(str, cells.shape))} {cells.dtype} array"
        )
    return list(cells.reshape(-1))


def check_identity_counts(split: Split, cell_lengths: Dict[int, int], prefix: str) -> None:
    """The authors' layout has one cell per identity number: a camera's feature file must have
    as many cells as the split file's cell vector of that camera (the files belong together)."""
    for image_set in (split.visible, split.thermal):
        for cam in np.unique(image_set.cams):
            highest = int(image_set.ids[image_set.cams == cam].max())
            expected = cell_lengths.get(int(cam))
            if expected is not None and highest > expected:
                raise DatasetError(
                    f"{prefix}_cam{cam}.mat has features for identity {highest}, but the split "
                    f"file covers identities 1..{expected} of camera {cam}: the feature cells "
                    "must be indexed by the SYSU-MM01 identity number"
                )


def read_npz_features(paths: List[Path]) -> Tuple[Features, Split]:
    """Features of `task=extract` .npz files (one per modality, or one with both)."""
    parts = {m: [] for m in MODALITIES}
    for path in paths:
        for modality, part in _npz_parts(path):
            parts[modality].append(part)
    missing = [m for m in MODALITIES if not parts[m]]
    if missing:
        raise DatasetError(
            f"no {' or '.join(missing)} features in {[str(p) for p in paths]}: the protocols "
            "rank one modality against the other; pass both, e.g. "
            "task.features=[visible.npz,thermal.npz]"
        )
    features, sets = {}, {}
    for modality, chunks in parts.items():
        names = [list(chunk["features"]) for chunk in chunks]
        if any(n != names[0] for n in names):
            raise DatasetError(f"the {modality} files hold different feature arrays: {names}")
        for key in names[0]:
            dims = sorted({chunk["features"][key].shape[1] for chunk in chunks})
            if len(dims) > 1:
                raise DatasetError(
                    f"the {modality} files' {key} features have different widths {dims}: every "
                    "file must come from one model"
                )
        features[modality] = {
            key: np.concatenate([chunk["features"][key] for chunk in chunks]) for key in names[0]
        }
        sets[modality] = ImageSet(
            np.concatenate([c["ids"] for c in chunks]),
            np.concatenate([c["cams"] for c in chunks]),
            [name for c in chunks for name in c["names"]],
        )
    for key in features["visible"]:
        if key in features["thermal"]:
            dims = {m: features[m][key].shape[1] for m in MODALITIES}
            if dims["visible"] != dims["thermal"]:
                raise DatasetError(
                    f"{key} features have {dims['visible']} dimensions for visible images and "
                    f"{dims['thermal']} for thermal ones; both must come from one model"
                )
    return features, Split(visible=sets["visible"], thermal=sets["thermal"])


def _check_npz_members(path: Path) -> None:
    """Refuse a .npz before numpy reads it: its arrays' sizes (the zip directory's and each
    .npy header's shape and dtype, which must agree) must fit the bound and half the free
    memory; object arrays are refused by the reader itself."""
    bound = min(MAX_FEATURE_FILE_BYTES, readable_bytes())
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(info.file_size for info in members)
            if declared > bound:
                raise DatasetError(
                    f"{path} declares {declared} bytes of arrays, more than the {bound} that may "
                    "be read here (half the free memory, at most 8 GiB); split the features"
                )
            for info in members:
                with archive.open(info) as member:
                    _check_npy_header(path, info, member)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(f"{path} is not a .npz file ({err})") from None


def _check_npy_header(path: Path, info, member) -> None:
    try:
        version = np.lib.format.read_magic(member)
        shape, _, dtype = np.lib.format._read_array_header(member, version, max_header_size=10000)
    except (ValueError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: member {info.filename} is not a .npy array ({err})") from None
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if dtype.hasobject:
        return  # refused with its name when read (allow_pickle=False)
    held = info.file_size - member.tell()
    if count * dtype.itemsize != held:
        raise DatasetError(
            f"{path}: {info.filename} declares shape {shape} ({count * dtype.itemsize} bytes of "
            f"{dtype}) but holds {held} bytes of data; the file is damaged or crafted"
        )


def _npz_parts(path: Path):
    """(modality, {"ids", "cams", "names", "features"}) for each modality the file holds."""
    if not path.is_file():
        raise DatasetError(f"feature file not found: {path}")
    _check_npz_members(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetError(f"cannot read {path}: {err} (object arrays are not read)") from None
    absent = [k for k in ("ids", "cams", "names", "modality") if k not in arrays]
    feats = {name: arrays[key] for key, name in NPZ_FEATURE_KEYS.items() if key in arrays}
    if absent or not feats:
        raise DatasetError(
            f"{path} lacks {absent or 'a feature array'}: a feature file holds names, ids, cams, "
            f"modality and {' or '.join(NPZ_FEATURE_KEYS)} (what task=extract writes)"
        )
    for key in ("ids", "cams", "names"):
        value = arrays[key]
        kind_ok = value.dtype.kind in "iu" if key != "names" else value.dtype.kind in "US"
        if value.ndim != 1 or not kind_ok:
            wanted = "integers" if key != "names" else "strings"
            raise DatasetError(
                f"{path}: '{key}' must be a 1-D array of {wanted}, one per image; it is a "
                f"{value.ndim}-D {value.dtype} array"
            )
    count = len(arrays["ids"])
    unique, counts = np.unique(arrays["names"], return_counts=True)
    if len(unique) != len(arrays["names"]):
        repeated = str(unique[np.argmax(counts > 1)])
        raise DatasetError(
            f"{path}: the image {repeated!r} appears more than once in 'names'; every image "
            "has one row"
        )
    lengths = {k: len(arrays[k]) for k in ("cams", "names")}
    lengths.update({k: len(v) for k, v in feats.items()})
    if any(n != count for n in lengths.values()):
        raise DatasetError(
            f"{path}: {count} ids but {lengths}; every array needs one row per image"
        )
    for key, values in feats.items():
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.floating) or not values.shape[1]:
            raise DatasetError(
                f"{path}: {key} must be a 2-D float array with at least one column, got "
                f"{values.dtype} {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(values), axis=1))[0])
            raise DatasetError(f"{path}: {key} of image {arrays['names'][bad]} is NaN or inf")
    modality = np.asarray(arrays["modality"])
    if modality.ndim > 1 or modality.dtype.kind not in "US":
        raise DatasetError(
            f"{path}: 'modality' must be one string or a 1-D array of strings, one per image; "
            f"it is a {modality.ndim}-D {modality.dtype} array"
        )
    modality = modality.astype(str)
    modality = np.full(count, modality.item()) if modality.ndim == 0 else modality
    unknown = sorted(set(modality.tolist()) - set(MODALITIES))
    if len(modality) != count or unknown:
        raise DatasetError(f"{path}: modality must be {MODALITIES} (one value or one per row)")
    for name in MODALITIES:
        rows = modality == name
        if rows.any():
            yield (
                name,
                {
                    "ids": arrays["ids"][rows].astype(np.int64),
                    "cams": arrays["cams"][rows].astype(np.int64),
                    "names": [str(n) for n in arrays["names"][rows]],
                    "features": {k: v[rows] for k, v in feats.items()},
                },
            )
