"""One of several augmentations, picked uniformly per image (torchvision `RandomChoice`), as
hulu88/PMT `transforms.py` gives thermal images either a colour jitter or a Gaussian blur."""

from typing import Dict

import numpy as np

from ddag.data.augmentations.base import MODALITY_NAMES, PIXELS, Augmentation
from ddag.errors import ConfigError


class RandomChoice(Augmentation):
    """Apply one of `choices`, drawn uniformly for every image it applies to.

    Args:
        choices: name -> augmentation of the pixel stage (built from nested `_target_` nodes);
            each applies to the images this one applies to, whatever its own `modalities`.
    """

    def __init__(self, choices: Dict[str, Augmentation], modalities=MODALITY_NAMES):
        super().__init__(modalities)
        items = list((choices or {}).values())
        if not items:
            raise ConfigError("RandomChoice: choices is empty; give at least one augmentation")
        for item in items:
            if not isinstance(item, Augmentation) or item.stage != PIXELS:
                raise ConfigError(
                    f"RandomChoice: {type(item).__name__} is not a pixel-stage augmentation"
                )
        self.choices = tuple(items)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.choices[int(rng.integers(len(self.choices)))](image, rng)
