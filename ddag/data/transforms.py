"""Image pipelines (reference: DDAG `train_ddag.py` transforms).

Train: zero-pad, random crop to (height, width), random horizontal flip, ImageNet normalisation,
HWC -> CHW. Test: resize, normalisation, HWC -> CHW. Input images are (H, W, 3) uint8 RGB.

The random crop and flip are drawn in numpy from a generator the loader seeds with
(seed, epoch, position in epoch), so an epoch's augmentation is the same in a fresh run, a
resumed run and with any number of workers. MindSpore's RandomCrop/RandomHorizontalFlip draw
from pipeline state that restarts when a run resumes. Normalisation, layout and test-time
resizing use `mindspore.dataset.vision`.
"""

from typing import List

import mindspore.dataset.vision as vision
import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise_ops() -> List:
    """ImageNet normalisation (on 0-255 values) and HWC -> CHW."""
    return [
        vision.Normalize(
            mean=[m * 255 for m in IMAGENET_MEAN], std=[s * 255 for s in IMAGENET_STD]
        ),
        vision.HWC2CHW(),
    ]


def augment(
    image: np.ndarray,
    rng: np.random.Generator,
    height: int,
    width: int,
    padding: int = 10,
    flip: bool = True,
) -> np.ndarray:
    """Pad with zeros, crop (height, width) at a random offset, mirror with probability 0.5."""
    if image.shape[:2] != (height, width):
        image = np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))
    if padding:
        image = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        top, left = rng.integers(0, 2 * padding + 1, size=2)
        image = image[top : top + height, left : left + width]
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def test_transforms(height: int, width: int) -> List:
    """Deterministic pipeline for query/gallery images."""
    return [vision.Resize((height, width))] + normalise_ops()
