"""Colour jitter (torchvision `ColorJitter` on PIL images): brightness, contrast, saturation,
hue."""

import math

import numpy as np
from PIL import Image, ImageEnhance

from ddag.data.augmentations.base import MODALITY_NAMES, Augmentation
from ddag.errors import ConfigError

_ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
    "saturation": ImageEnhance.Color,
}
ORDER = ("brightness", "contrast", "saturation", "hue")


def shift_hue(image: Image.Image, factor: float) -> Image.Image:
    """torchvision's PIL `adjust_hue`: add `factor` of a turn to the HSV hue, wrapping."""
    hue, saturation, value = image.convert("HSV").split()
    shifted = (np.asarray(hue, np.uint8).astype(np.int16) + int(factor * 255)) % 256
    hue = Image.fromarray(shifted.astype(np.uint8), "L")
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")


class ColorJitter(Augmentation):
    """With probability `probability`, change brightness, contrast and saturation by factors
    drawn in [max(0, 1 - x), 1 + x] and the hue by a fraction of a turn in [-hue, hue], in a
    random order (torchvision's semantics; the draws come from ddag's generator).

    Args:
        brightness, contrast, saturation: jitter strengths (0: unchanged).
        hue: hue jitter in [0, 0.5].
        probability: chance that an image is jittered.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
        probability: float = 1.0,
        modalities=MODALITY_NAMES,
    ):
        super().__init__(modalities)
        strengths = (("brightness", brightness), ("contrast", contrast), ("saturation", saturation))
        for name, value in strengths + (("hue", hue), ("probability", probability)):
            if not math.isfinite(value):
                raise ConfigError(f"ColorJitter: {name}={value} must be a finite number")
        for name, value in (("brightness", brightness), ("contrast", contrast)):
            if value < 0:
                raise ConfigError(f"ColorJitter: {name}={value} must be >= 0")
        if saturation < 0 or not 0 <= hue <= 0.5 or not 0 <= probability <= 1:
            raise ConfigError(
                f"ColorJitter: saturation={saturation} must be >= 0, hue={hue} in [0, 0.5], "
                f"probability={probability} in [0, 1]"
            )
        self.strengths = {
            "brightness": brightness,
            "contrast": contrast,
            "saturation": saturation,
            "hue": hue,
        }
        self.probability = probability

    def draws(self, rng: np.random.Generator):
        """[(operation, factor)] in the order applied."""
        steps = []
        for index in rng.permutation(len(ORDER)):
            name = ORDER[index]
            strength = self.strengths[name]
            if not strength:
                continue
            if name == "hue":
                steps.append((name, float(rng.uniform(-strength, strength))))
            else:
                steps.append((name, float(rng.uniform(max(0.0, 1 - strength), 1 + strength))))
        return steps

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.probability:
            return image
        picture = Image.fromarray(np.ascontiguousarray(image))
        for name, factor in self.draws(rng):
            if name == "hue":
                picture = shift_hue(picture, factor)
            else:
                picture = _ENHANCERS[name](picture).enhance(factor)
        return np.asarray(picture)
