"""Random erasing (Zhong et al., AAAI 2020) as the VI-ReID codes apply it: on the normalised image.

Transcribes `RandomErasing` of ZYK100/LLCM `DEEN/random_erasing.py` and `ChannelRandomErasing` of
mangye16/Cross-Modal-Re-ID-baseline `ICCV21_CAJ/ChannelAug.py` (the same algorithm): with
probability `probability`, up to `attempts` tries draw an area fraction in `area` and an aspect
ratio in [aspect, 1/aspect]; the first rectangle that fits is filled with `fill`, one value per
channel, on the normalised scale (the codes write their means there: DEEN the ImageNet means,
CAJ the CIFAR means 0.4914, 0.4822, 0.4465).
"""

import math
from typing import Sequence

import numpy as np

from ddag.data.augmentations.base import MODALITY_NAMES, NORMALISED, Augmentation
from ddag.errors import ConfigError


class RandomErasing(Augmentation):
    """Erase one random rectangle of a normalised (3, H, W) image.

    Args:
        probability: chance that an image is erased.
        area: (lowest, highest) fraction of the image area erased.
        aspect: lowest aspect ratio h/w of the rectangle (the highest is its inverse).
        fill: value written per channel (normalised scale).
        attempts: rectangles drawn before giving up on an image.
    """

    stage = NORMALISED

    def __init__(
        self,
        probability: float = 0.5,
        area: Sequence[float] = (0.02, 0.4),
        aspect: float = 0.3,
        fill: Sequence[float] = (0.485, 0.456, 0.406),
        attempts: int = 100,
        modalities=MODALITY_NAMES,
    ):
        super().__init__(modalities)
        if not 0 <= probability <= 1:
            raise ConfigError(f"RandomErasing: probability={probability} must be in [0, 1]")
        if len(area) != 2 or not 0 < area[0] <= area[1] <= 1:
            raise ConfigError(f"RandomErasing: area={list(area)} must be 0 < low <= high <= 1")
        if not 0 < aspect <= 1:
            raise ConfigError(f"RandomErasing: aspect={aspect} must be in (0, 1]")
        if len(fill) != 3 or not np.all(np.isfinite(np.asarray(fill, np.float64))):
            raise ConfigError(
                f"RandomErasing: fill={list(fill)} needs one finite value per channel"
            )
        if not 1 <= attempts <= 1000:
            raise ConfigError(f"RandomErasing: attempts={attempts} must be in [1, 1000]")
        self.probability, self.area, self.aspect = probability, tuple(area), aspect
        self.fill = np.asarray(fill, np.float32)
        self.attempts = attempts

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() > self.probability:
            return image
        _, height, width = image.shape
        for _ in range(self.attempts):
            target = rng.uniform(*self.area) * height * width
            ratio = rng.uniform(self.aspect, 1 / self.aspect)
            h = int(round(math.sqrt(target * ratio)))
            w = int(round(math.sqrt(target / ratio)))
            if w < width and h < height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                image = image.copy()
                image[:, top : top + h, left : left + w] = self.fill[:, None, None]
                return image
        return image
