"""Gaussian blur with a random width (torchvision `GaussianBlur` on PIL images), as hulu88/PMT
`transforms.py` blurs thermal images (kernel 21, sigma drawn in [0.1, 3])."""

from typing import Sequence

import numpy as np

from ddag.data.augmentations.base import MODALITY_NAMES, Augmentation
from ddag.errors import ConfigError


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """torchvision's 1-D kernel: a Gaussian sampled at the `size` integer offsets around the
    centre, normalised to sum 1."""
    offsets = np.linspace(-(size - 1) / 2, (size - 1) / 2, size)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).astype(np.float32)


def blur(image: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """uint8 (H, W, C) blurred by a separable `size` x `size` Gaussian, borders mirrored
    without repeating the edge (torch's "reflect" padding), rounded back to uint8."""
    kernel = gaussian_kernel(size, sigma)
    half = size // 2
    padded = np.pad(image.astype(np.float32), ((half, half), (half, half), (0, 0)), "reflect")
    height, width = image.shape[:2]
    # Each output pixel is a weighted sum of `size` shifted views: one pass per axis.
    rows = sum(kernel[i] * padded[i : i + height] for i in range(size))
    out = sum(kernel[i] * rows[:, i : i + width] for i in range(size))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class GaussianBlur(Augmentation):
    """Blur with a Gaussian of `kernel_size` taps and a standard deviation drawn uniformly in
    `sigma` per image.

    Args:
        kernel_size: odd number of taps per axis (PMT 21).
        sigma: (lowest, highest) standard deviation in pixels (PMT (0.1, 3)).
        probability: chance that an image is blurred (torchvision's transform: always).
    """

    def __init__(
        self,
        kernel_size: int = 21,
        sigma: Sequence[float] = (0.1, 3.0),
        probability: float = 1.0,
        modalities=MODALITY_NAMES,
    ):
        super().__init__(modalities)
        if kernel_size < 1 or kernel_size % 2 == 0 or kernel_size > 255:
            raise ConfigError(f"GaussianBlur: kernel_size={kernel_size} must be odd, 1..255")
        if len(sigma) != 2 or not 0 < sigma[0] <= sigma[1] <= 1000:
            raise ConfigError(f"GaussianBlur: sigma={list(sigma)} must be 0 < low <= high <= 1000")
        if not 0 <= probability <= 1:
            raise ConfigError(f"GaussianBlur: probability={probability} must be in [0, 1]")
        self.kernel_size, self.sigma, self.probability = kernel_size, tuple(sigma), probability

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.probability:
            return image
        return blur(image, self.kernel_size, float(rng.uniform(*self.sigma)))
