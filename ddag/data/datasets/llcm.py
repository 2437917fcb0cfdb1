"""LLCM reader (Zhang and Wang, "Diverse Embedding Expansion Network and Low-Light
Cross-Modality Benchmark for Visible-Infrared Person Re-identification", CVPR 2023), original
layout, as ZYK100/LLCM `DEEN/data_loader.py` (LLCMData) and `DEEN/data_manager.py` read it:

    <root>/idx/train_vis.txt, idx/train_nir.txt   lines "<path relative to root> <label>"
    <root>/idx/test_id.txt                         comma-separated test identity numbers
    <root>/test_vis/cam1 .. cam9/<4-digit id>/<image>       visible test images
    <root>/test_nir/cam1, cam2, cam4 .. cam9/<4-digit id>/<image>   infrared test images

Training labels are relabelled by one mapping for both modalities (a label must mean the same
person in both files, as for RegDB); a training image's camera is the digit after "cam" in its
path where there is one. Test images keep their identity numbers and cameras; files are listed
per identity, camera and sorted name, as DEEN's process_query_llcm does.
"""

import re
from pathlib import Path
from typing import List, Tuple

from ddag.data.datasets.base import FileImageSet, Split, VIReIDDataset, is_image_file
from ddag.data.datasets.index_files import (
    images_in_both,
    read_index_file,
    shared_label_mapping,
    unmatched_identities,
)
from ddag.data.datasets.sysu import read_ids
from ddag.data.doctor import DoctorReport, check_files, compare_count, expect_folders
from ddag.errors import DatasetError

VISIBLE_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
THERMAL_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
TEST_FOLDERS = {"visible": ("test_vis", VISIBLE_CAMERAS), "thermal": ("test_nir", THERMAL_CAMERAS)}
INDEX_FILES = {"visible": "idx/train_vis.txt", "thermal": "idx/train_nir.txt"}
# Identities of the published dataset: 1,064 in all, 713 for training (DEEN's n_class), 351 test.
PUBLISHED = {"train_ids": 713, "test_ids": 351}
PREPARE_HINT = (
    "LLCM must be requested from its authors (signed release agreement, see "
    "github.com/ZYK100/LLCM); unpack it so that <root> holds idx/, test_vis/ and test_nir/ "
    "(and the training folders idx/train_*.txt name), then set dataset.root=<root>."
)
_CAMERA_IN_PATH = re.compile(r"cam(\d)")


def camera_of(path: str) -> int:
    """The camera digit after "cam" in a path (DEEN parses it so), 0 where there is none."""
    found = _CAMERA_IN_PATH.search(path)
    return int(found.group(1)) if found else 0


class LLCMDataset(VIReIDDataset):
    """LLCM.

    Args:
        root: folder holding idx/, test_vis/, test_nir/ and the training images.
        height: image height (DEEN trains at 384).
        width: image width (DEEN: 144).
    """

    name = "llcm"

    def __init__(self, root: str, height: int = 384, width: int = 144):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"LLCM root not found: {self.root}. {PREPARE_HINT}")
        self.height, self.width = height, width
        self._splits = {}

    def _train_rows(self, modality: str) -> List[Tuple[str, int]]:
        return read_index_file(self.root / INDEX_FILES[modality], "LLCM", PREPARE_HINT)

    def test_ids(self) -> List[int]:
        return read_ids(self.root / "idx" / "test_id.txt", "LLCM", PREPARE_HINT)

    def train_split(self) -> Split:
        if "train" not in self._splits:
            visible, thermal = self._train_rows("visible"), self._train_rows("thermal")
            mapping = shared_label_mapping(
                visible,
                thermal,
                f"LLCM: {INDEX_FILES['visible']} and {INDEX_FILES['thermal']}",
                "fix the index files",
            )
            sets = [
                FileImageSet(
                    [self.root / path for path, _ in rows],
                    [mapping[label] for _, label in rows],
                    [camera_of(path) for path, _ in rows],
                    self.height,
                    self.width,
                )
                for rows in (visible, thermal)
            ]
            self._splits["train"] = Split(visible=sets[0], thermal=sets[1])
        return self._splits["train"]

    def _listing(self, modality: str, identities: List[int]):
        folder, cameras = TEST_FOLDERS[modality]
        paths, ids, cams = [], [], []
        for identity in identities:
            for cam in cameras:
                images = self.root / folder / f"cam{cam}" / f"{identity:04d}"
                if images.is_dir():
                    for path in sorted(p for p in images.iterdir() if is_image_file(p)):
                        paths.append(path)
                        ids.append(identity)
                        cams.append(cam)
        return paths, ids, cams

    def test_split(self) -> Split:
        if "test" not in self._splits:
            identities = self.test_ids()
            sets = [
                FileImageSet(*self._listing(modality, identities), self.height, self.width)
                for modality in ("visible", "thermal")
            ]
            self._splits["test"] = Split(visible=sets[0], thermal=sets[1])
        return self._splits["test"]

    @property
    def num_train_ids(self) -> int:
        return len(set(label for _, label in self._train_rows("visible")))

    def check(self, decode: bool = False) -> DoctorReport:
        """Folders, index files, unmatched training identities, test identities without
        images, image files (decoded with `decode`), counts."""
        report = DoctorReport("LLCM", str(self.root))
        if not expect_folders(report, self.root, ("idx", "test_vis", "test_nir"), PREPARE_HINT):
            return report
        absent = [
            name
            for name in (*INDEX_FILES.values(), "idx/test_id.txt")
            if not (self.root / name).is_file()
        ]
        if absent:
            report.add("error", "index file(s) missing: " + ", ".join(absent), PREPARE_HINT)
            return report
        rows = {m: self._train_rows(m) for m in INDEX_FILES}
        unmatched = unmatched_identities(*([label for _, label in rows[m]] for m in INDEX_FILES))
        if unmatched:
            report.add(
                "error",
                f"the training index files list different identities ({len(unmatched)} unmatched)",
                "list every training identity in both files (a label is one person in both)",
                unmatched,
            )
            return report
        both = images_in_both(rows["visible"], rows["thermal"])
        if both:
            report.add(
                "error",
                f"{len(both)} training image(s) are listed in both {INDEX_FILES['visible']} and "
                f"{INDEX_FILES['thermal']}",
                "list visible images in the one and infrared images in the other (is one a copy "
                "of the other?)",
                both,
            )
            return report
        compare_count(
            report,
            "training identities",
            len({label for _, label in rows["visible"]}),
            PUBLISHED["train_ids"],
        )
        test = self.test_ids()
        compare_count(report, "test identities", len(test), PUBLISHED["test_ids"])
        paths = [self.root / path for m in INDEX_FILES for path, _ in rows[m]]
        for modality in ("visible", "thermal"):
            files, ids, _ = self._listing(modality, test)
            report.counts[f"test {modality} images"] = len(files)
            paths += files
            empty = sorted(set(test) - set(ids))
            if empty:
                folder = TEST_FOLDERS[modality][0]
                report.add(
                    "error",
                    f"{len(empty)} test identities have no {modality} image under {folder}/",
                    "restore their folders or remove them from idx/test_id.txt",
                    [f"{i:04d}" for i in empty],
                )
        check_files(report, paths, decode)
        return report
