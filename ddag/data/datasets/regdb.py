"""RegDB reader (Nguyen et al. 2017), original layout.

    <root>/Visible/<id>/*.bmp, <root>/Thermal/<id>/*.bmp
    <root>/idx/{train,test}_{visible,thermal}_<trial>.txt   lines: "<relative path> <label>"

412 identities with 10 visible and 10 thermal images each; every trial (1..10) splits them into
206 training and 206 test identities. Reference: mangye16/DDAG `data_loader.py` (RegDBData) and
`data_manager.py` (process_test_regdb). Training labels are relabelled to 0..N-1; test labels are
kept. Visible images get camera 1, thermal images camera 2.
"""

from pathlib import Path
from typing import List, Tuple

import numpy as np

from ddag.data.datasets.base import FileImageSet, Split, VIReIDDataset
from ddag.data.datasets.index_files import (
    images_in_both,
    read_index_file,
    shared_label_mapping,
    unmatched_identities,
)
from ddag.data.doctor import DoctorReport, check_files, compare_count, expect_folders
from ddag.errors import DatasetError

TRIALS = range(1, 11)
PUBLISHED = {"identities_per_split": 206, "images_per_identity": 10}
PREPARE_HINT = (
    "RegDB must be requested from its authors (licence form); unpack it so that <root> holds "
    "Visible/, Thermal/ and idx/, then set dataset.root=<root>."
)


def read_index(path: Path) -> List[Tuple[str, int]]:
    """(relative path, label) per line of an idx/*.txt file (`read_index_file`)."""
    return read_index_file(path, "RegDB", PREPARE_HINT)


class RegDBDataset(VIReIDDataset):
    """RegDB for one trial.

    Args:
        root: folder holding Visible/, Thermal/ and idx/.
        trial: split 1..10 of the idx files.
        height: images are resized to this height when loaded.
        width: images are resized to this width when loaded.
    """

    name = "regdb"

    def __init__(self, root: str, trial: int = 1, height: int = 288, width: int = 144):
        if trial not in TRIALS:
            raise DatasetError(f"dataset.trial={trial}: RegDB trials are 1..10")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"RegDB root not found: {self.root}. {PREPARE_HINT}")
        self.trial, self.height, self.width = trial, height, width
        self._splits = {}

    def index_path(self, split: str, modality: str) -> Path:
        return self.root / "idx" / f"{split}_{modality}_{self.trial}.txt"

    def _rows(self, split: str, modality: str) -> List[Tuple[str, int]]:
        return read_index(self.index_path(split, modality))

    def _image_set(self, rows, modality: str, mapping=None) -> FileImageSet:
        paths = [self.root / rel for rel, _ in rows]
        labels = [label for _, label in rows]
        if mapping is not None:
            labels = [mapping[label] for label in labels]
        cam = 1 if modality == "visible" else 2
        return FileImageSet(paths, labels, [cam] * len(rows), self.height, self.width)

    def _split(self, split: str) -> Split:
        """The split's images; training labels relabelled by one mapping for both modalities."""
        if split not in self._splits:
            visible, thermal = self._rows(split, "visible"), self._rows(split, "thermal")
            mapping = None
            if split == "train":
                mapping = shared_label_mapping(
                    visible,
                    thermal,
                    f"RegDB trial {self.trial}: the training index files",
                    f"fix idx/train_visible_{self.trial}.txt and "
                    f"idx/train_thermal_{self.trial}.txt",
                )
            self._splits[split] = Split(
                visible=self._image_set(visible, "visible", mapping),
                thermal=self._image_set(thermal, "thermal", mapping),
            )
        return self._splits[split]

    def train_split(self) -> Split:
        return self._split("train")

    def test_split(self) -> Split:
        return self._split("test")

    def check(self, decode: bool = False) -> DoctorReport:
        """Folders, index files of every trial, listed images (decoded with `decode`), counts."""
        report = DoctorReport("RegDB", str(self.root))
        if not expect_folders(report, self.root, ("Visible", "Thermal", "idx"), PREPARE_HINT):
            return report
        absent = [
            f"idx/{s}_{m}_{t}.txt"
            for t in TRIALS
            for s in ("train", "test")
            for m in ("visible", "thermal")
            if not (self.root / "idx" / f"{s}_{m}_{t}.txt").is_file()
        ]
        if absent:
            level = (
                "error"
                if any(name.endswith(f"_{self.trial}.txt") for name in absent)
                else "warning"
            )
            report.add(level, f"{len(absent)} index file(s) missing", PREPARE_HINT, absent)
            if level == "error":
                return report
        for split, level in (("train", "error"), ("test", "error")):
            unmatched = unmatched_identities(
                *([label for _, label in self._rows(split, m)] for m in ("visible", "thermal"))
            )
            if unmatched:
                report.add(
                    level,
                    f"trial {self.trial} {split}: the visible and thermal index files list "
                    f"different identities ({len(unmatched)} unmatched)",
                    "list every identity in both modalities"
                    + (
                        " (training labels must mean the same person in both)"
                        if split == "train"
                        else " (a query whose identity has no gallery image cannot be scored)"
                    ),
                    unmatched,
                )
            both = images_in_both(*(self._rows(split, m) for m in ("visible", "thermal")))
            if both:
                report.add(
                    "error",
                    f"trial {self.trial} {split}: {len(both)} image(s) are listed in both the "
                    "visible and the thermal index file",
                    "list visible images in the one and thermal images in the other (is one a "
                    "copy of the other?)",
                    both,
                )
        if report.errors:
            return report
        paths = []
        for split in ("train", "test"):
            for modality in ("visible", "thermal"):
                images = self._split(split).modality(modality)
                paths += [Path(n) for n in images.names]
                ids, counts = np.unique(images.ids, return_counts=True)
                compare_count(
                    report,
                    f"trial {self.trial} {split} {modality} identities",
                    len(ids),
                    PUBLISHED["identities_per_split"],
                )
                short = [
                    f"identity {i}: {c} images"
                    for i, c in zip(ids, counts)
                    if c != PUBLISHED["images_per_identity"]
                ]
                if short:
                    report.add(
                        "warning",
                        f"{split} {modality}: {len(short)} identities without "
                        f"{PUBLISHED['images_per_identity']} images",
                        "fine for a subset",
                        short,
                    )
        check_files(report, paths, decode)
        return report
