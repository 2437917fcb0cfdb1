"""The reference's augmentation (DDAG `train_ddag.py`): zero padding, random crop, random flip."""

import numpy as np

from ddag.data.augmentations.base import MODALITY_NAMES, Augmentation
from ddag.errors import ConfigError


class PadCropFlip(Augmentation):
    """Pad with zeros, crop the original size at a random offset, mirror with probability 0.5.

    Args:
        padding: pixels of zeros on every side before the crop (paper 10); 0 crops nothing.
        flip: mirror horizontally with probability 0.5.
    """

    def __init__(self, padding: int = 10, flip: bool = True, modalities=MODALITY_NAMES):
        super().__init__(modalities)
        if padding < 0:
            raise ConfigError(f"PadCropFlip: padding={padding} must be >= 0")
        self.padding, self.flip = padding, flip

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        pad = self.padding
        if pad:
            image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
            top, left = rng.integers(0, 2 * pad + 1, size=2)
            image = image[top : top + height, left : left + width]
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        return image
