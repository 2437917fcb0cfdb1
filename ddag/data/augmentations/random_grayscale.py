"""Random grayscale (torchvision `RandomGrayscale`, p=0.5 as ZYK100/LLCM `DEEN/train.py` uses
it)."""

import numpy as np
from PIL import Image

from ddag.data.augmentations.base import MODALITY_NAMES, Augmentation
from ddag.errors import ConfigError


class RandomGrayscale(Augmentation):
    """With probability `probability`, replace the image by its luma (PIL's "L": ITU-R 601-2,
    0.299 R + 0.587 G + 0.114 B) in all three channels.

    DEEN applies it to both modalities; a thermal image stored with equal channels is unchanged
    by it (up to rounding), so it acts on the visible images.
    """

    def __init__(self, probability: float = 0.5, modalities=MODALITY_NAMES):
        super().__init__(modalities)
        if not 0 <= probability <= 1:
            raise ConfigError(f"RandomGrayscale: probability={probability} must be in [0, 1]")
        self.probability = probability

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.probability:
            return image
        luma = np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"))
        return np.repeat(luma[:, :, None], 3, axis=2)
