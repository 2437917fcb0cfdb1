"""Python API for inference: load a checkpoint, extract features, rank a gallery.

from ddag.api import load_model
model = load_model("outputs/.../checkpoints/best.ckpt")
fc, fc_att = model.extract("query_folder", modality="thermal")
ranking = model.search("query_folder", "gallery_folder", query_modality="thermal", top_k=10)
"""

from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np

from ddag.checkpoints.checkpointer import Checkpointer
from ddag.data.datasets.base import ArrayImageSet, FileImageSet, ImageSet
from ddag.data.datasets.folder import folder_images
from ddag.data.loader import LoaderSettings
from ddag.engine.runtime import RuntimeSettings, setup_runtime
from ddag.errors import ConfigError
from ddag.evaluation.features import MODALITY_CODES, FeatureExtractor
from ddag.evaluation.metrics import (
    known_average_precision,
    nearest,
    pairwise_distance,
    ranking_scores,
)
from ddag.evaluation.onnx_engine import BACKENDS, onnx_engine

Images = Union[str, List[str], np.ndarray, ImageSet]
FEATURES = ("FC", "FC_att")


def pixel_array(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB from uint8 0-255 or float 0-1 pixels; ConfigError for the rest.

    Other integer types (uint16, int64) and floats outside [0, 1] are refused rather than
    guessed: they would give features of the wrong images without any sign.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ConfigError(f"images must be an (N, H, W, 3) RGB array, got shape {images.shape}")
    if len(images) == 0:
        raise ConfigError("no images: the array holds 0 images")
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating):
        if not np.all(np.isfinite(images)):
            raise ConfigError("images hold NaN or infinite values")
        if images.min() < 0 or images.max() > 1:
            raise ConfigError(
                f"float images must be in [0, 1], got values from {images.min():g} to "
                f"{images.max():g}; pass uint8 for 0-255 pixels"
            )
        return np.round(images * 255.0).astype(np.uint8)
    raise ConfigError(
        f"images of dtype {images.dtype} are not supported: pass uint8 (0-255) or float "
        "(0-1) RGB pixels"
    )


@dataclass
class Ranking:
    """Top-k gallery matches per query: indices (Q, k) into the gallery and their distances
    (Q, k) of the kind `distance` (lower is closer); `average_precision` (Q,) over the whole
    gallery where the identities are known (NaN for a query whose identity it lacks)."""

    query: ImageSet
    gallery: ImageSet
    indices: np.ndarray
    distances: np.ndarray
    distance: str = "cosine"
    average_precision: Optional[np.ndarray] = None

    def to_dict(self) -> dict:
        """JSON-ready: per query its matches, each with the score the pictures show (cosine and
        inner: "similarity", higher is closer; euclidean: "distance", lower is closer) and
        whether it is the query's identity (null where identities are unknown)."""
        name, scores = ranking_scores(self.distances, self.distance)
        closer = "higher" if name == "similarity" else "lower"
        queries = []
        for q in range(len(self.query)):
            query_id = int(self.query.ids[q])
            ap = None if self.average_precision is None else self.average_precision[q]
            matches = []
            for g, score in zip(self.indices[q], scores[q]):
                gallery_id = int(self.gallery.ids[g])
                known = query_id >= 0 and gallery_id >= 0
                matches.append(
                    {
                        "gallery": self.gallery.names[g],
                        "gallery_id": gallery_id,
                        name: float(score),
                        "correct": (gallery_id == query_id) if known else None,
                    }
                )
            queries.append(
                {
                    "query": self.query.names[q],
                    "query_id": query_id,
                    "average_precision": None if ap is None or np.isnan(ap) else float(ap),
                    "matches": matches,
                }
            )
        return {"score": f"{name} ({self.distance}; {closer} is closer)", "queries": queries}


class ReIDModel:
    """A DDAG network ready for inference.

    Args:
        network: a DDAG network with loaded weights.
        height: input height the network was trained with.
        width: input width the network was trained with.
        batch_size: images per inference batch.
        flip: average each image's features with its mirror's.
        engine: another runtime computing the features (`onnx_engine.OnnxEngine`); None:
            MindSpore.
    """

    def __init__(
        self,
        network,
        height: int = 288,
        width: int = 144,
        batch_size: int = 64,
        flip: bool = False,
        engine=None,
    ):
        self.network = network
        self.height, self.width = height, width
        settings = LoaderSettings(height=height, width=width, test_batch_size=batch_size)
        self.extractor = FeatureExtractor(network, settings, flip=flip, engine=engine)

    def images(self, images: Images) -> ImageSet:
        """An ImageSet from a folder, a list of files, an array (see `pixel_array`) or a set."""
        if isinstance(images, ImageSet):
            return images
        if isinstance(images, np.ndarray):
            pixels = pixel_array(images)
            n = len(pixels)
            return ArrayImageSet(pixels, [-1] * n, [-1] * n, [f"array[{i}]" for i in range(n)])
        if isinstance(images, (list, tuple)):
            if not images:
                raise ConfigError("no images: the list of files is empty")
            n = len(images)
            return FileImageSet(list(images), [-1] * n, [-1] * n, self.height, self.width)
        return folder_images(images, self.height, self.width)

    def extract(self, images: Images, modality: str):
        """(FC, FC_att) L2-normalised features, each (N, C), of `images` of one modality."""
        if modality not in MODALITY_CODES:
            raise ConfigError(
                f"unknown modality {modality!r}; must be one of {list(MODALITY_CODES)}"
            )
        return self.extractor(self.images(images), modality)

    def search(
        self,
        query: Images,
        gallery: Images,
        query_modality: str = "thermal",
        top_k: int = 10,
        feature: str = "FC_att",
        distance: str = "cosine",
    ) -> Ranking:
        """Rank `gallery` (the other modality) for every query image.

        `feature` is "FC" (BN feature) or "FC_att" (part attention), spelled exactly;
        `distance` is "cosine" or "euclidean" (`ddag.evaluation.metrics.DISTANCES`).
        """
        if feature not in FEATURES:
            raise ConfigError(f"feature={feature!r}; choose one of {', '.join(FEATURES)}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k={top_k!r} must be a whole number >= 1")
        gallery_modality = "visible" if query_modality == "thermal" else "thermal"
        query_set, gallery_set = self.images(query), self.images(gallery)
        pick = FEATURES.index(feature)
        q = self.extract(query_set, query_modality)[pick]
        g = self.extract(gallery_set, gallery_modality)[pick]
        all_distances = pairwise_distance(q, g, distance)
        order, distances = nearest(all_distances, top_k)
        return Ranking(
            query_set,
            gallery_set,
            order,
            distances,
            distance,
            known_average_precision(all_distances, query_set.ids, gallery_set.ids),
        )


def load_model(
    checkpoint: str,
    height: int = None,
    width: int = None,
    batch_size: int = 64,
    flip: bool = False,
    device: str = "CPU",
    mode: str = "graph",
    backend: str = "mindspore",
    threads: int = None,
) -> ReIDModel:
    """Load a ddag or MindSpore model-zoo DDAG checkpoint for inference.

    The input size defaults to the one stored in the checkpoint (288x144 for model-zoo files).
    This sets MindSpore's device and execution mode for the process. `backend="onnxruntime"`
    computes features with ONNX Runtime on the checkpoint's exported graph (`threads`: its
    intra-op threads; the extra `.[onnx]`).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}; choose one of {list(BACKENDS)}")
    settings = RuntimeSettings(device_target=device, mode=mode, host_blocking=device == "CPU")
    setup_runtime(settings, seed=0)
    loaded = Checkpointer().load_network(checkpoint)
    stored = loaded.input
    height = height or (stored.height if stored else 288)
    width = width or (stored.width if stored else 144)
    engine = None
    if backend == "onnxruntime":
        loaded.network.set_train(False)
        engine = onnx_engine(loaded.network, height, width, threads)
    return ReIDModel(loaded.network, height, width, batch_size, flip, engine=engine)
