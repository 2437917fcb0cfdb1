"""SYSU-MM01 reader (Wu et al. 2017), original layout.

    <root>/cam1 .. cam6/<4-digit id>/<image>.jpg     RGB cameras 1, 2, 4, 5; IR cameras 3, 6
    <root>/exp/train_id.txt, val_id.txt, test_id.txt  comma-separated identity numbers

Training uses train + val identities (395) as the reference does (`merge_val=True`); with
`merge_val=False` the validation identities are held out for model selection. Files are
listed per identity and camera in sorted order, as the reference's preprocessing and query and
gallery builders do (mangye16/DDAG `pre_process_sysu.py`, `data_manager.py`).

`task=prepare` packs the training images into the reference's arrays
(`train_{rgb,ir}_resized_{img,label}.npy`); training reads them when present and when their image
size matches, and decodes the JPEGs otherwise.
"""

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ddag.data.datasets.base import (
    ArrayImageSet,
    FileImageSet,
    ImageSet,
    Split,
    VIReIDDataset,
    is_image_file,
    read_text,
)
from ddag.data.doctor import DoctorReport, check_files, compare_count, expect_folders
from ddag.errors import DatasetError
from ddag.utils.logging import get_logger

log = get_logger(__name__)

RGB_CAMERAS = (1, 2, 4, 5)
IR_CAMERAS = (3, 6)
PUBLISHED = {"train_ids": 395, "test_ids": 96, "train_visible": 22258, "train_thermal": 11909}
PREPARE_HINT = (
    "SYSU-MM01 must be requested from its authors (licence form); unpack it so that <root> "
    "holds cam1..cam6/ and exp/, then set dataset.root=<root>."
)


MAX_LISTED_IDS = 100_000


def read_ids(path: Path, dataset: str = "SYSU-MM01", hint: str = PREPARE_HINT) -> List[int]:
    """Identity numbers of an exp/*_id.txt file (comma separated, possibly over several lines)."""
    if not path.is_file():
        raise DatasetError(f"{dataset} split file missing: {path}. {hint}")
    text = read_text(path)
    tokens = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit() and len(t) <= 6)), None)
    if bad is not None:
        raise DatasetError(
            f"{path}: expected comma-separated identity numbers (up to 6 digits), got {bad[:20]!r}"
        )
    if len(tokens) > MAX_LISTED_IDS:
        raise DatasetError(
            f"{path} lists {len(tokens)} identities; the datasets have a few hundred to a "
            f"thousand (at most {MAX_LISTED_IDS} accepted). Restore the file from the archive"
        )
    return sorted({int(t) for t in tokens})


def list_images(root: Path, identities: List[int], cameras: Tuple[int, ...]):
    """(paths, ids, cams) of every image of `identities` in `cameras`, sorted per id and camera."""
    paths, ids, cams = [], [], []
    for identity in identities:
        for cam in cameras:
            folder = root / f"cam{cam}" / f"{identity:04d}"
            if folder.is_dir():
                for path in sorted(p for p in folder.iterdir() if is_image_file(p) and p.is_file()):
                    paths.append(path)
                    ids.append(identity)
                    cams.append(cam)
    return paths, ids, cams


def split_files_fingerprint(root: Path, merge_val: bool) -> str:
    """sha256 of the split files that decide the training set (train_id, and val_id if merged)."""
    digest = hashlib.sha256()
    for name in ("train", "val") if merge_val else ("train",):
        digest.update((root / "exp" / f"{name}_id.txt").read_bytes())
    return digest.hexdigest()


def images_fingerprint(root: Path, paths) -> str:
    """sha256 over (path below root, size, modification time) of image files: an image that
    was replaced, rewritten or touched changes it, so packed arrays are not used stale."""
    digest = hashlib.sha256()
    for path in paths:
        stat = Path(path).stat()
        relative = Path(path).relative_to(root).as_posix()
        digest.update(f"{relative}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def fingerprint_path(root: Path, merge_val: bool) -> Path:
    """The JSON written beside the packed arrays: split-file fingerprint and image size."""
    return root / f"train_resized_fingerprint{'' if merge_val else '_trainonly'}.json"


def prepared_paths(root: Path, merge_val: bool) -> Dict[str, Path]:
    """Where `task=prepare` writes the packed training arrays (reference names when merged)."""
    suffix = "" if merge_val else "_trainonly"
    return {
        f"{mod}_{kind}": root / f"train_{mod}_resized_{kind}{suffix}.npy"
        for mod in ("rgb", "ir")
        for kind in ("img", "label")
    }


class SYSUDataset(VIReIDDataset):
    """SYSU-MM01.

    Args:
        root: folder holding cam1..cam6/ and exp/.
        height: image height used for training and test.
        width: image width used for training and test.
        merge_val: train on train + val identities (reference) or hold val out for selection.
        use_prepared: read the packed training arrays when they exist.
    """

    name = "sysu"

    def __init__(
        self,
        root: str,
        height: int = 288,
        width: int = 144,
        merge_val: bool = True,
        use_prepared: bool = True,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"SYSU-MM01 root not found: {self.root}. {PREPARE_HINT}")
        self.height, self.width = height, width
        self.merge_val, self.use_prepared = merge_val, use_prepared
        self._cache: Dict[str, Split] = {}
        self._listings: Dict[tuple, tuple] = {}

    def split_ids(self, name: str) -> List[int]:
        return read_ids(self.root / "exp" / f"{name}_id.txt")

    def train_ids(self) -> List[int]:
        ids = self.split_ids("train")
        if self.merge_val:
            ids = sorted(set(ids) | set(self.split_ids("val")))
        return ids

    def _listing(self, identities: List[int], cameras: Tuple[int, ...]):
        """`list_images`, remembered so the start-up check and the splits walk the tree once."""
        key = (tuple(identities), cameras)
        if key not in self._listings:
            self._listings[key] = list_images(self.root, identities, cameras)
        return self._listings[key]

    def _file_split(self, identities: List[int], relabel: bool) -> Split:
        sets = []
        for cameras in (RGB_CAMERAS, IR_CAMERAS):
            paths, ids, cams = self._listing(identities, cameras)
            if relabel:
                mapping = {identity: i for i, identity in enumerate(identities)}
                ids = [mapping[i] for i in ids]
            sets.append(FileImageSet(paths, ids, cams, self.height, self.width))
        return Split(visible=sets[0], thermal=sets[1])

    def prepared_split(self) -> Optional[Split]:
        """The packed arrays of `task=prepare`, if present and made from this tree's split."""
        files = prepared_paths(self.root, self.merge_val)
        if not self.use_prepared or not all(p.is_file() for p in files.values()):
            return None
        arrays = {
            mod: (np.load(files[f"{mod}_img"], mmap_mode="r"), np.load(files[f"{mod}_label"]))
            for mod in ("rgb", "ir")
        }
        problem = self._prepared_problem(arrays)
        if problem:
            log.warning(
                "not using the prepared arrays in %s: %s. The JPEGs are decoded instead "
                "(task=prepare packs the arrays again)",
                self.root,
                problem,
            )
            return None
        sets = []
        for mod in ("rgb", "ir"):
            images, labels = arrays[mod]
            names = [f"{files[f'{mod}_img'].name}[{i}]" for i in range(len(labels))]
            sets.append(ArrayImageSet(images, labels, [0] * len(labels), names))
        return Split(visible=sets[0], thermal=sets[1])

    def _prepared_problem(self, arrays) -> Optional[str]:
        """Why the packed arrays do not belong to this tree and size, or None when they do."""
        fingerprint = fingerprint_path(self.root, self.merge_val)
        if not fingerprint.is_file():
            return f"{fingerprint.name} is missing, so their split files are unknown"
        try:
            stored = json.loads(fingerprint.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return f"{fingerprint.name} is not valid JSON"
        if stored.get("split_files_sha256") != split_files_fingerprint(self.root, self.merge_val):
            return "they were packed from other exp/*_id.txt split files"
        identities = self.train_ids()
        if stored.get("images_sha256") != self.train_images_fingerprint():
            return (
                "the training images changed since they were packed (a file was added, removed, "
                "replaced or touched), or an older ddag packed them"
            )
        mapping = {identity: i for i, identity in enumerate(identities)}
        for mod, cameras in (("rgb", RGB_CAMERAS), ("ir", IR_CAMERAS)):
            images, labels = arrays[mod]
            if images.shape[1:] != (self.height, self.width, 3) or len(images) != len(labels):
                return (
                    f"they hold {images.shape[1:3]} images, the run uses {self.height}x{self.width}"
                )
            _, listed, _ = self._listing(identities, cameras)
            expected = np.bincount([mapping[i] for i in listed], minlength=len(identities))
            labels = np.asarray(labels)
            if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(identities):
                return f"{mod} labels fall outside 0..{len(identities) - 1}"
            if not np.array_equal(np.bincount(labels, minlength=len(identities)), expected):
                return f"their {mod} images per identity differ from the image folders"
        return None

    def train_images_fingerprint(self) -> str:
        """`images_fingerprint` of every training image, visible then thermal."""
        identities = self.train_ids()
        paths = [
            p for cams in (RGB_CAMERAS, IR_CAMERAS) for p in self._listing(identities, cams)[0]
        ]
        return images_fingerprint(self.root, paths)

    def train_split(self) -> Split:
        if "train" not in self._cache:
            split = self.prepared_split()
            self._cache["train"] = split or self._file_split(self.train_ids(), relabel=True)
        return self._cache["train"]

    def val_split(self) -> Optional[Split]:
        if self.merge_val:
            return None
        if "val" not in self._cache:
            self._cache["val"] = self._file_split(self.split_ids("val"), relabel=False)
        return self._cache["val"]

    def test_split(self) -> Split:
        if "test" not in self._cache:
            self._cache["test"] = self._file_split(self.split_ids("test"), relabel=False)
        return self._cache["test"]

    @property
    def num_train_ids(self) -> int:
        return len(self.train_ids())

    def check(self, decode: bool = False) -> DoctorReport:
        """Folders, split files, empty identities, image files (decoded with `decode`), counts."""
        report = DoctorReport("SYSU-MM01", str(self.root))
        folders = [f"cam{c}" for c in RGB_CAMERAS + IR_CAMERAS] + ["exp"]
        if not expect_folders(report, self.root, folders, PREPARE_HINT):
            return report
        absent = [
            f"exp/{n}_id.txt"
            for n in ("train", "val", "test")
            if not (self.root / "exp" / f"{n}_id.txt").is_file()
        ]
        if absent:
            report.add("error", "split file(s) missing: " + ", ".join(absent), PREPARE_HINT)
            return report
        train, test = self.train_ids(), self.split_ids("test")
        compare_count(
            report,
            "training identities (train + val)" if self.merge_val else "training identities",
            len(train),
            PUBLISHED["train_ids"],
        )
        compare_count(report, "test identities", len(test), PUBLISHED["test_ids"])
        paths = []
        for group, identities in (("training", train), ("test", test)):
            for modality, cameras in (("visible", RGB_CAMERAS), ("thermal", IR_CAMERAS)):
                files, ids, _ = self._listing(identities, cameras)
                paths += files
                if group == "training":
                    compare_count(
                        report,
                        f"training {modality} images",
                        len(files),
                        PUBLISHED[f"train_{modality}"],
                    )
                empty = sorted(set(identities) - set(ids))
                if empty:
                    report.add(
                        "error",
                        f"{len(empty)} {group} identities have no {modality} images "
                        f"(cameras {list(cameras)})",
                        "restore their folders or remove them from the exp/*_id.txt files",
                        [f"{i:04d}" for i in empty],
                    )
        check_files(report, paths, decode)
        return report

    def decoded_train_sets(self) -> Tuple[ImageSet, ImageSet]:
        """Training images read from the JPEGs (used by `task=prepare`)."""
        split = self._file_split(self.train_ids(), relabel=True)
        return split.visible, split.thermal
