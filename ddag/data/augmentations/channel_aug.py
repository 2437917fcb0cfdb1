"""CAJ's channel augmentation (Ye et al., "Channel Augmented Joint Learning for Visible-Infrared
Recognition", ICCV 2021; mangye16/Cross-Modal-Re-ID-baseline `ICCV21_CAJ`).

On normalised images: `ChannelExchange` (the visible images' channel-exchangeable augmentation,
`ChannelExchange(gray=2)` of `ICCV21_CAJ/data_loader.py`: one of the R, G, B channels, drawn
uniformly, copied into all three; with `gray=3` a weighted grayscale is a fourth outcome) and
`ChannelAdaptiveGray` (the thermal images' `ChannelAdapGray(probability=0.5)` of `ChannelAug.py`:
one channel copied with probability 3/4 each 1/4, else grayscale with probability
`probability`). The channel-level random erasing is `RandomErasing` with CAJ's fill.
"""

import numpy as np

from ddag.data.augmentations.base import NORMALISED, Augmentation
from ddag.errors import ConfigError

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # CAJ's, on the normalised channels


def _single_channel(image: np.ndarray, channel: int) -> np.ndarray:
    return np.repeat(image[channel : channel + 1], 3, axis=0)


def _gray(image: np.ndarray) -> np.ndarray:
    weights = np.asarray(GRAY_WEIGHTS, np.float32)[:, None, None]
    return np.repeat((image * weights).sum(axis=0, keepdims=True), 3, axis=0)


class ChannelExchange(Augmentation):
    """With probability `probability`, replace a normalised image by one of its channels
    (outcomes 0-2) or, for `gray=3`, its weighted grayscale (outcome 3); the outcome is drawn
    uniformly in 0..gray.

    Args:
        gray: highest outcome: 2 (CAJ's setting: a channel, never gray) or 3.
        probability: share of the images exchanged (CAJ: every image of its second view).
    """

    stage = NORMALISED

    def __init__(self, gray: int = 2, probability: float = 1.0, modalities=("visible",)):
        super().__init__(modalities)
        if gray not in (2, 3):
            raise ConfigError(f"ChannelExchange: gray={gray} must be 2 or 3")
        if not 0 <= probability <= 1:
            raise ConfigError(f"ChannelExchange: probability={probability} not in [0, 1]")
        self.gray, self.probability = gray, probability

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.probability < 1 and rng.random() >= self.probability:
            return image
        outcome = int(rng.integers(0, self.gray + 1))
        return _single_channel(image, outcome) if outcome < 3 else _gray(image)


class ChannelAdaptiveGray(Augmentation):
    """Replace a normalised image by one of its channels (outcomes 0-2, 1/4 each) or keep it
    (outcome 3), then, for outcome 3, turn it gray with probability `probability`."""

    stage = NORMALISED

    def __init__(self, probability: float = 0.5, modalities=("thermal",)):
        super().__init__(modalities)
        if not 0 <= probability <= 1:
            raise ConfigError(f"ChannelAdaptiveGray: probability={probability} not in [0, 1]")
        self.probability = probability

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        outcome = int(rng.integers(0, 4))
        if outcome < 3:
            return _single_channel(image, outcome)
        if rng.random() > self.probability:
            return image
        return _gray(image)
