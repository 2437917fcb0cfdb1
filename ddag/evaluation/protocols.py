"""Evaluation protocols: which test images are queries and which are gallery, per trial.

A protocol only selects indices into the test split's visible and thermal sets and declares a
fingerprint; features are extracted once and reused by every protocol and trial.
"""

import random
from typing import Dict, Tuple

import numpy as np

from ddag.data.datasets.base import MODALITIES, Split
from ddag.errors import ConfigError

Selection = Tuple[
    str, np.ndarray, str, np.ndarray
]  # query modality, indices, gallery modality, indices


class CrossModalProtocol:
    """All images of one modality query all images of the other (RegDB and synthetic).

    Args:
        query: "visible" or "thermal".
        gallery: the other modality.
        metric: "regdb" (standard CMC, no camera rule).
    """

    trials = 1

    def __init__(self, query: str = "visible", gallery: str = "thermal", metric: str = "regdb"):
        if query not in MODALITIES or gallery not in MODALITIES or query == gallery:
            raise ConfigError(
                f"query/gallery must be the two modalities {MODALITIES}, got {query}/{gallery}"
            )
        self.query, self.gallery, self.metric = query, gallery, metric

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

    def fingerprint(self) -> Dict:
        return {
            "protocol": "cross_modal",
            "query": self.query,
            "gallery": self.gallery,
            "metric": self.metric,
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

    metric = "sysu"
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
        thermal, visible = split.thermal, split.visible
        query = np.flatnonzero(np.isin(thermal.cams, self.QUERY_CAMERAS))
        rng = random.Random(trial)
        gallery = []
        for identity in np.unique(visible.ids):
            for cam in self.CAMERAS[self.search]:
                candidates = np.flatnonzero((visible.ids == identity) & (visible.cams == cam))
                if len(candidates) == 0:
                    continue
                candidates = sorted(candidates, key=lambda i: visible.names[i])
                if self.shots == 1:
                    gallery.append(rng.choice(candidates))
                else:
                    gallery.extend(rng.sample(candidates, min(self.shots, len(candidates))))
        return "thermal", query, "visible", np.asarray(gallery, dtype=np.int64)

    def fingerprint(self) -> Dict:
        return {
            "protocol": "sysu",
            "search": self.search,
            "shots": self.shots,
            "trials": self.trials,
            "query_cams": list(self.QUERY_CAMERAS),
            "gallery_cams": list(self.CAMERAS[self.search]),
        }
