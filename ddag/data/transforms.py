"""Image pipelines with `mindspore.dataset.vision` (reference: DDAG `train_ddag.py` transforms).

Train: zero-pad 10, random crop to (height, width), random horizontal flip, ImageNet
normalisation, HWC -> CHW. Test: resize to (height, width), normalisation, HWC -> CHW.
Input images are (H, W, 3) uint8 RGB.
"""

from typing import List

import mindspore.dataset.vision as vision

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _normalise() -> List:
    return [
        vision.Normalize(
            mean=[m * 255 for m in IMAGENET_MEAN], std=[s * 255 for s in IMAGENET_STD]
        ),
        vision.HWC2CHW(),
    ]


def train_transforms(height: int, width: int, padding: int = 10, flip: bool = True) -> List:
    """Augmenting pipeline for training images."""
    ops = (
        [vision.Pad(padding), vision.RandomCrop((height, width))]
        if padding
        else [vision.Resize((height, width))]
    )
    if flip:
        ops.append(vision.RandomHorizontalFlip())
    return ops + _normalise()


def test_transforms(height: int, width: int) -> List:
    """Deterministic pipeline for query/gallery images."""
    return [vision.Resize((height, width))] + _normalise()
