"""The augmentation contract and the per-image pipeline that applies a list of them.

An augmentation works at one `stage`: "pixels" (uint8 (H, W, 3) RGB images, before
normalisation: crop, flip, grayscale, colour) or "normalised" (float32 (3, H, W) images after
ImageNet normalisation, where the reference codes erase and exchange channels). The pipeline
resizes to the training size, applies the pixel-stage augmentations in list order, then, if any
augmentation of the normalised stage is selected, normalises in numpy and applies those in list
order; otherwise normalisation stays in the MindSpore pipeline, as it always was.
"""

from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

from ddag.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ddag.engine.phases import EpochWindow
from ddag.errors import ConfigError

PIXELS, NORMALISED = "pixels", "normalised"
MODALITY_NAMES = ("visible", "thermal")
# The second view of each visible image when `loader.visible_views=2` (CAJ's joint learning):
# it gets the visible augmentations and those listed for "second_view" alone.
SECOND_VIEW = "second_view"
VIEWS = MODALITY_NAMES + (SECOND_VIEW,)


class Augmentation:
    """One random training transform.

    Args:
        modalities: the images it applies to ("visible", "thermal", and "second_view": only
            the second view of the visible images, `loader.visible_views=2`); the others pass
            unchanged and draw nothing. "visible" covers both views.
    """

    stage = PIXELS

    def __init__(self, modalities: Sequence[str] = MODALITY_NAMES):
        unknown = [m for m in modalities if m not in VIEWS]
        if unknown or not modalities:
            raise ConfigError(
                f"{type(self).__name__}: modalities={list(modalities)}; choose among {list(VIEWS)}"
            )
        self.modalities = tuple(modalities)

    def applies_to(self, view: str) -> bool:
        """Whether images of `view` ("visible", "thermal" or "second_view") get this."""
        return view in self.modalities or (view == SECOND_VIEW and "visible" in self.modalities)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


def _normalised_levels() -> np.ndarray:
    """(3, 256) float32: every uint8 level of each channel normalised with the same float32
    operations as torchvision's order (scale to [0, 1], subtract the mean, divide by the std)."""
    levels = np.arange(256, dtype=np.float32)[None, :] / np.float32(255)
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None]
    return (levels - mean) / std


_LEVELS = _normalised_levels()


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) with ImageNet mean and std (torchvision's order:
    scale to [0, 1], subtract the mean, divide by the std), looked up per level: the same
    values as computing them, in one pass instead of five (the training source's largest cost)."""
    out = np.empty((3,) + image.shape[:2], np.float32)
    for channel in range(3):
        np.take(_LEVELS[channel], image[:, :, channel], out=out[channel])
    return out


class AugmentationPipeline:
    """Resize + the selected augmentations, for one training image at a time.

    `windows` (one EpochWindow per augmentation, default always) limit an augmentation to
    some epochs (PMT's gray phase); an augmentation outside its window draws nothing.
    """

    def __init__(
        self,
        augmentations: List[Augmentation],
        height: int,
        width: int,
        always_normalise: bool = False,
        windows: Optional[List[EpochWindow]] = None,
    ):
        for item in augmentations:
            if not isinstance(item, Augmentation):
                raise ConfigError(
                    f"loader.augment holds a {type(item).__name__}, not an augmentation"
                )
            if item.stage not in (PIXELS, NORMALISED):
                raise ConfigError(f"{type(item).__name__}: unknown stage {item.stage!r}")
        windows = list(windows) if windows is not None else [EpochWindow()] * len(augmentations)
        if len(windows) != len(augmentations):
            raise ValueError(f"{len(windows)} epoch windows for {len(augmentations)} augmentations")
        paired = list(zip(augmentations, windows))
        self.pixels = [(a, w) for a, w in paired if a.stage == PIXELS]
        self.normalised_stage = [(a, w) for a, w in paired if a.stage == NORMALISED]
        self.height, self.width = height, width
        self.always_normalise = always_normalise

    @property
    def normalises(self) -> bool:
        """Whether images leave the pipeline normalised (float CHW) rather than as uint8 HWC."""
        return bool(self.normalised_stage) or self.always_normalise

    def __call__(
        self, image: np.ndarray, view: str, rng: np.random.Generator, epoch: int = 0
    ) -> np.ndarray:
        """One augmented image of `view` ("visible", "thermal" or "second_view") in 0-based
        `epoch`."""
        if image.shape[:2] != (self.height, self.width):
            resized = Image.fromarray(image).resize((self.width, self.height), Image.LANCZOS)
            image = np.asarray(resized)
        for item, window in self.pixels:
            if item.applies_to(view) and window.active(epoch):
                image = item(image, rng)
        if not self.normalises:
            return np.ascontiguousarray(image)
        image = normalise(image)  # reads any strides (a flipped view) into a new array
        for item, window in self.normalised_stage:
            if item.applies_to(view) and window.active(epoch):
                image = item(image, rng)
        return np.ascontiguousarray(image, dtype=np.float32)
