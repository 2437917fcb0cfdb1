"""Python API for inference: load a checkpoint, extract features, rank a gallery.

from ddag.api import load_model
model = load_model("outputs/.../checkpoints/best.ckpt")
fc, fc_att = model.extract("query_folder", modality="thermal")
ranking = model.search("query_folder", "gallery_folder", query_modality="thermal", top_k=10)
"""

from dataclasses import dataclass
from typing import List, Union

import numpy as np

from ddag.config.instantiate import network_for_checkpoint
from ddag.data.datasets.base import ArrayImageSet, FileImageSet, ImageSet
from ddag.data.datasets.folder import folder_images
from ddag.data.loader import LoaderSettings
from ddag.engine.runtime import RuntimeSettings, setup_runtime
from ddag.errors import ConfigError
from ddag.evaluation.features import MODALITY_CODES, FeatureExtractor
from ddag.evaluation.metrics import cosine_distance

Images = Union[str, List[str], np.ndarray, ImageSet]


@dataclass
class Ranking:
    """Top-k gallery matches per query: indices (Q, k) into the gallery, distances (Q, k)."""

    query: ImageSet
    gallery: ImageSet
    indices: np.ndarray
    distances: np.ndarray

    def to_dict(self) -> dict:
        return {
            "queries": [
                {
                    "query": self.query.names[q],
                    "query_id": int(self.query.ids[q]),
                    "matches": [
                        {
                            "gallery": self.gallery.names[g],
                            "gallery_id": int(self.gallery.ids[g]),
                            "distance": float(d),
                        }
                        for g, d in zip(self.indices[q], self.distances[q])
                    ],
                }
                for q in range(len(self.query))
            ]
        }


class ReIDModel:
    """A DDAG network ready for inference.

    Args:
        network: a DDAG network with loaded weights.
        height: input height the network was trained with.
        width: input width the network was trained with.
        batch_size: images per inference batch.
        flip: average each image's features with its mirror's.
    """

    def __init__(
        self, network, height: int = 288, width: int = 144, batch_size: int = 64, flip: bool = False
    ):
        self.network = network
        self.height, self.width = height, width
        settings = LoaderSettings(height=height, width=width, test_batch_size=batch_size)
        self.extractor = FeatureExtractor(network, settings, flip=flip)

    def images(self, images: Images) -> ImageSet:
        """An ImageSet from a folder, a list of files, an (N, H, W, 3) uint8 array or a set."""
        if isinstance(images, ImageSet):
            return images
        if isinstance(images, np.ndarray):
            n = len(images)
            return ArrayImageSet(images, [-1] * n, [-1] * n, [f"array[{i}]" for i in range(n)])
        if isinstance(images, (list, tuple)):
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
    ) -> Ranking:
        """Rank `gallery` (the other modality) for every query image."""
        gallery_modality = "visible" if query_modality == "thermal" else "thermal"
        query_set, gallery_set = self.images(query), self.images(gallery)
        pick = 1 if feature == "FC_att" else 0
        q = self.extract(query_set, query_modality)[pick]
        g = self.extract(gallery_set, gallery_modality)[pick]
        distances = cosine_distance(q, g)
        k = min(top_k, len(gallery_set))
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return Ranking(query_set, gallery_set, order, np.take_along_axis(distances, order, axis=1))


def load_model(
    checkpoint: str,
    height: int = None,
    width: int = None,
    batch_size: int = 64,
    flip: bool = False,
    device: str = "CPU",
    mode: str = "graph",
) -> ReIDModel:
    """Load a ddag or MindSpore model-zoo DDAG checkpoint for inference.

    The input size defaults to the one stored in the checkpoint (288x144 for model-zoo files).
    This sets MindSpore's device and execution mode for the process.
    """
    setup_runtime(RuntimeSettings(device_target=device, mode=mode), seed=0)
    network, _, meta = network_for_checkpoint(checkpoint)
    loader = meta.get("config", {}).get("loader", {})
    return ReIDModel(
        network,
        height or loader.get("height", 288),
        width or loader.get("width", 144),
        batch_size,
        flip,
    )
