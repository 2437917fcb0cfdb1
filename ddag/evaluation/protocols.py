"""Evaluation protocols: which test images are queries and which are gallery, per trial.

A protocol selects indices into the test split's visible and thermal sets, holds the rule of
which gallery entries count for a query (`rule`, `ddag.evaluation.gallery_rules`) and declares a
fingerprint; features are extracted once and reused by every protocol and trial. `check(split)`
lists what makes a split unusable for the protocol (run at start-up and by the doctor).

- CrossModalProtocol (RegDB, synthetic): every image of one modality queries every image of the
  other; one trial.
- SYSUProtocol (the DDAG/AGW code): thermal cameras 3 and 6 query 1 or 10 random images per
  identity and RGB camera, drawn after `random.seed(trial)`; 10 trials.
- SYSUOfficialProtocol (the dataset authors): the same queries; the gallery is the first 1 or 10
  images of each permutation in `rand_perm_cam.mat`; the file's 10 trials.
- LLCMProtocol (the DEEN code): one image per identity and camera drawn as in SYSUProtocol, in
  one modality; 10 trials.
"""

import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ddag.data.datasets.base import MODALITIES, ImageSet, Split
from ddag.data.sysu_splits import OfficialSplits, read_official_splits
from ddag.errors import ConfigError, EvaluationError
from ddag.evaluation.gallery_rules import LLCM, RULES, SYSU

Selection = Tuple[
    str, np.ndarray, str, np.ndarray
]  # query modality, indices, gallery modality, indices


class CrossModalProtocol:
    """All images of one modality query all images of the other (RegDB and synthetic).

    Args:
        query: "visible" or "thermal".
        gallery: the other modality.
        metric: the gallery rule by name: "regdb" (every entry counts, standard CMC; the
            default), "sysu" or "llcm".
    """

    trials = 1

    def __init__(self, query: str = "visible", gallery: str = "thermal", metric: str = "regdb"):
        if query not in MODALITIES or gallery not in MODALITIES or query == gallery:
            raise ConfigError(
                f"query/gallery must be the two modalities {MODALITIES}, got {query}/{gallery}"
            )
        if metric not in RULES:
            raise ConfigError(f"metric={metric!r}; choose one of {list(RULES)}")
        self.query, self.gallery, self.rule = query, gallery, RULES[metric]

    @property
    def name(self) -> str:
        short = {"visible": "v", "thermal": "t"}
        return f"{short[self.query]}2{short[self.gallery]}"

    def select(self, split: Split, trial: int) -> Selection:
        return (
            self.query,
            np.arange(len(split.modality(self.query))),
            self.gallery,
            np.arange(len(split.modality(self.gallery))),
        )

    def check(self, split: Split) -> List[str]:
        """Every query identity must have a gallery image: a query without one is an error in
        the index files (the two modalities list different test identities)."""
        missing = np.setdiff1d(split.modality(self.query).ids, split.modality(self.gallery).ids)
        if len(missing) == 0:
            return []
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        return [
            f"{self.name}: {len(missing)} {self.query} test identities have no {self.gallery} "
            f"image ({shown}); list every test identity in both modalities"
        ]

    def fingerprint(self) -> Dict:
        return {
            "protocol": "cross_modal",
            "query": self.query,
            "gallery": self.gallery,
            "metric": self.rule.name,
            "trials": self.trials,
        }


class SYSUProtocol:
    """SYSU-MM01 all-search / indoor-search with random single- or multi-shot galleries.

    Queries: every thermal test image from cameras 3 and 6. Gallery: for each test identity in
    ascending order and each RGB camera in order (all: 1, 2, 4, 5; indoor: 1, 2), `shots` images
    drawn from the sorted file list after Python's `random.seed(trial)` (reference:
    mangye16/DDAG `data_manager.py` process_gallery_sysu; trials 0..9).

    Args:
        search: "all" or "indoor".
        shots: 1 (single-shot, paper) or 10 (multi-shot).
        trials: number of gallery draws averaged (paper 10).
    """

    rule = SYSU
    CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
    QUERY_CAMERAS = (3, 6)

    def __init__(self, search: str = "all", shots: int = 1, trials: int = 10):
        if search not in self.CAMERAS:
            raise ConfigError(f"SYSU search mode {search!r}; must be one of {tuple(self.CAMERAS)}")
        if shots < 1 or trials < 1:
            raise ConfigError("SYSU shots and trials must be >= 1")
        self.search, self.shots, self.trials = search, shots, trials

    @property
    def name(self) -> str:
        return f"sysu_{self.search}" + ("" if self.shots == 1 else f"_{self.shots}shot")

    def select(self, split: Split, trial: int) -> Selection:
        query = np.flatnonzero(np.isin(split.thermal.cams, self.QUERY_CAMERAS))
        gallery = draw_per_identity_and_camera(
            split.visible, self.CAMERAS[self.search], random.Random(trial), self.shots
        )
        return "thermal", query, "visible", gallery

    def check(self, split: Split) -> List[str]:
        return []

    def fingerprint(self) -> Dict:
        return {
            "protocol": "sysu",
            "search": self.search,
            "shots": self.shots,
            "trials": self.trials,
            "query_cams": list(self.QUERY_CAMERAS),
            "gallery_cams": list(self.CAMERAS[self.search]),
        }


def image_groups(images: ImageSet) -> Dict[Tuple[int, int], np.ndarray]:
    """(identity, camera) -> indices of its images in file-name order."""
    groups = {}
    if len(images) == 0:
        return groups
    order = np.lexsort((np.asarray(images.names), images.cams, images.ids))
    keys = np.stack([images.ids[order], images.cams[order]], axis=1)
    starts = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    for chunk in np.split(order, starts):
        groups[(int(images.ids[chunk[0]]), int(images.cams[chunk[0]]))] = chunk
    return groups


def draw_per_identity_and_camera(
    images: ImageSet, cameras: Sequence[int], rng: random.Random, shots: int = 1
) -> np.ndarray:
    """The reference codes' random gallery: for each identity ascending and each camera in
    order, `rng.choice` of the file-name-sorted images (`rng.sample` of `shots` for multi-shot).

    mangye16/DDAG `data_manager.py` process_gallery_sysu and ZYK100/LLCM `DEEN/data_manager.py`
    process_gallery_llcm draw exactly so after `random.seed(trial)`.
    """
    groups = image_groups(images)
    picked = []
    for identity in np.unique(images.ids):
        for cam in cameras:
            candidates = groups.get((int(identity), int(cam)))
            if candidates is None:
                continue
            candidates = list(candidates)
            if shots == 1:
                picked.append(rng.choice(candidates))
            else:
                picked.extend(rng.sample(candidates, min(shots, len(candidates))))
    return np.asarray(picked, dtype=np.int64)


def ordered_by_identity_and_camera(images: ImageSet, cameras: Sequence[int]) -> np.ndarray:
    """Every image of `cameras`: identity ascending, cameras in the given order, file names
    sorted (the reference codes' query order)."""
    groups = image_groups(images)
    picked = [
        groups[(int(identity), int(cam))]
        for identity in np.unique(images.ids)
        for cam in cameras
        if (int(identity), int(cam)) in groups
    ]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


class SYSUOfficialProtocol:
    """SYSU-MM01 as its authors evaluate it, on the fixed splits of `rand_perm_cam.mat`.

    A transcription of wuancong/SYSU-MM01 `evaluation/get_testing_set.m` (run by
    `evaluation_SYSU_MM01.m`): for trial t, the gallery holds, for each gallery camera in
    order (all: 1, 2, 4, 5; indoor: 1, 2) and each test identity ascending, the images
    `rand_perm_cam{cam}{id}(t, 1:shots)` (image numbers in file-name order); the probes are
    every image of the test identities in cameras 3 and 6, camera by camera. The metric is the
    authors' (`get_cmc_multi_cam.m`, `get_map_multi_cam.m`): camera 3 shares camera 2's
    location, so a camera-3 probe ignores the camera-2 gallery; CMC over the ranking with
    repeated identities removed (first occurrence kept), mAP over every remaining entry, ties in
    gallery order (MATLAB's sort is stable). mINP is reported as well. The authors rank by
    Euclidean distance of the raw features: set eval.distance=euclidean to match them.

    Args:
        search: "all" or "indoor".
        shots: 1 (single-shot) or 10 (multi-shot), the two settings the file is made for.
        split_dir: folder holding rand_perm_cam.mat (and test_id.mat, whose identities are
            used when present; otherwise the test split's).
    """

    rule = SYSU
    CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
    QUERY_CAMERAS = (3, 6)
    SHOTS = (1, 10)

    def __init__(self, search: str = "all", shots: int = 1, split_dir: Optional[str] = None):
        if search not in self.CAMERAS:
            raise ConfigError(f"SYSU search mode {search!r}; must be one of {tuple(self.CAMERAS)}")
        if shots not in self.SHOTS:
            raise ConfigError(
                f"shots={shots!r}: the official SYSU-MM01 splits define single-shot (1) and "
                "multi-shot (10) galleries; choose 1 or 10"
            )
        if not split_dir:
            raise ConfigError(
                "the official SYSU-MM01 protocol needs split_dir, the folder holding the "
                "authors' rand_perm_cam.mat"
            )
        self.search, self.shots = search, shots
        self.splits: OfficialSplits = read_official_splits(split_dir)
        self.trials = self.splits.trials

    @classmethod
    def from_splits(cls, search: str, shots: int, splits: OfficialSplits):
        """The protocol on splits already in memory (benchmarks, tests)."""
        protocol = cls.__new__(cls)
        protocol.search, protocol.shots, protocol.splits = search, shots, splits
        protocol.trials = splits.trials
        return protocol

    @property
    def name(self) -> str:
        return f"sysu_official_{self.search}" + ("" if self.shots == 1 else f"_{self.shots}shot")

    def _test_ids(self, split: Split) -> List[int]:
        """test_id.mat's identities for a split that holds any of them (the test split);
        otherwise (no test_id.mat, or a validation split) the split's own identities."""
        held = np.union1d(split.visible.ids, split.thermal.ids)
        listed = self.splits.test_ids
        if listed is None or not np.isin(listed, held).any():
            listed = held
        return [int(i) for i in listed]

    def _cameras(self):
        return [(cam, "thermal") for cam in self.QUERY_CAMERAS] + [
            (cam, "visible") for cam in self.CAMERAS[self.search]
        ]

    def _problems(self, groups: Dict, ids: List[int]) -> List[str]:
        problems = []
        for cam, modality in self._cameras():
            for identity in ids:
                listed = self.splits.image_count(cam, identity)
                held = len(groups[modality].get((identity, cam), ()))
                if listed != held:
                    problems.append(
                        f"camera {cam}, identity {identity:04d}: {self.splits.path.name} "
                        f"numbers {listed} images, the test split holds {held} "
                        f"(cam{cam}/{identity:04d}/)"
                    )
                elif modality == "visible" and 0 < listed < self.shots:
                    problems.append(
                        f"camera {cam}, identity {identity:04d}: {listed} images, fewer than "
                        f"the {self.shots} a {self.shots}-shot gallery takes"
                    )
        if not any(len(groups["thermal"].get((i, c), ())) for i in ids for c in self.QUERY_CAMERAS):
            problems.append(f"{self.name}: no test identity has an image in cameras 3 or 6")
        return problems

    def check(self, split: Split) -> List[str]:
        """Every permutation must number exactly the images the split holds, per camera and
        identity, and a gallery permutation must have `shots` entries."""
        groups = {"visible": image_groups(split.visible), "thermal": image_groups(split.thermal)}
        return self._problems(groups, self._test_ids(split))

    def select(self, split: Split, trial: int) -> Selection:
        if not 0 <= trial < self.trials:
            raise EvaluationError(f"trial {trial} is outside the file's {self.trials} trials")
        groups = {"visible": image_groups(split.visible), "thermal": image_groups(split.thermal)}
        ids = self._test_ids(split)
        problems = self._problems(groups, ids)
        if problems:
            raise EvaluationError(
                f"{self.splits.path} does not match the test images: " + "; ".join(problems[:5])
            )
        chosen = {"visible": [], "thermal": []}
        for cam, modality in self._cameras():
            for identity in ids:
                order = self.splits.permutation(cam, identity, trial)
                if order is None:
                    continue
                images = groups[modality][(identity, cam)]
                chosen[modality].append(
                    images if modality == "thermal" else images[order[: self.shots]]
                )
        query, gallery = (
            np.concatenate(chosen[m]) if chosen[m] else np.zeros(0, dtype=np.int64)
            for m in ("thermal", "visible")
        )
        return "thermal", query, "visible", gallery

    def fingerprint(self) -> Dict:
        return {
            "protocol": "sysu_official",
            "search": self.search,
            "shots": self.shots,
            "trials": self.trials,
            "query_cams": list(self.QUERY_CAMERAS),
            "gallery_cams": list(self.CAMERAS[self.search]),
            "split_file": self.splits.path.name,
        }


class LLCMProtocol:
    """LLCM (Zhang and Wang, CVPR 2023) as DEEN's `test.py` and `eval_llcm` score it.

    ZYK100/LLCM `DEEN/test.py` draws, for trial t after `random.seed(t)`, one image per test
    identity (ascending) and camera (visible: 1..9; infrared: 1, 2, 4..9) of one modality, and
    scores with eval_llcm, which ignores a ranked image of the row's own identity and camera
    and counts distinct identities for the CMC:
    - "t2v" (its test_mode [1, 2], "IR to VIS"): every infrared test image ranks the drawn
      visible images.
    - "v2t" (its test_mode [2, 1], "VIS to IR"): the drawn images are infrared, and test.py
      transposes the distance matrix, so each drawn infrared image ranks every visible test
      image. This is kept as the code does it, so numbers compare with the LLCM tables.

    Args:
        direction: "v2t" or "t2v".
        trials: gallery draws averaged (DEEN: 10).
    """

    rule = LLCM
    VISIBLE_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    THERMAL_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
    DIRECTIONS = ("v2t", "t2v")

    def __init__(self, direction: str = "t2v", trials: int = 10):
        if direction not in self.DIRECTIONS:
            raise ConfigError(f"LLCM direction {direction!r}; choose one of {self.DIRECTIONS}")
        if trials < 1:
            raise ConfigError("LLCM trials must be >= 1")
        self.direction, self.trials = direction, trials

    @property
    def name(self) -> str:
        return f"llcm_{self.direction}"

    def check(self, split: Split) -> List[str]:
        if not np.isin(split.thermal.cams, self.THERMAL_CAMERAS).any():
            return [f"{self.name}: no infrared test image in cameras {self.THERMAL_CAMERAS}"]
        if not np.isin(split.visible.cams, self.VISIBLE_CAMERAS).any():
            return [f"{self.name}: no visible test image in cameras {self.VISIBLE_CAMERAS}"]
        return []

    def select(self, split: Split, trial: int) -> Selection:
        rng = random.Random(trial)
        if self.direction == "t2v":
            query = ordered_by_identity_and_camera(split.thermal, self.THERMAL_CAMERAS)
            gallery = draw_per_identity_and_camera(split.visible, self.VISIBLE_CAMERAS, rng)
        else:
            query = draw_per_identity_and_camera(split.thermal, self.THERMAL_CAMERAS, rng)
            gallery = ordered_by_identity_and_camera(split.visible, self.VISIBLE_CAMERAS)
        return "thermal", query, "visible", gallery

    def fingerprint(self) -> Dict:
        drawn = "one image per identity and camera, random.seed(trial)"
        return {
            "protocol": "llcm",
            "direction": self.direction,
            "trials": self.trials,
            "rows": "thermal, " + ("all images" if self.direction == "t2v" else drawn),
            "ranked": "visible, " + (drawn if self.direction == "t2v" else "all images"),
            "visible_cams": list(self.VISIBLE_CAMERAS),
            "thermal_cams": list(self.THERMAL_CAMERAS),
        }
