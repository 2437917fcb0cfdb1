"""Image pipelines (reference: DDAG `train_ddag.py` transforms).

Train: the selected augmentations (`ddag/data/augmentations/`, by default the reference's
zero-pad, random crop and random horizontal flip), then ImageNet normalisation and HWC -> CHW.
Test: resize, normalisation, HWC -> CHW. Input images are (H, W, 3) uint8 RGB.

The augmentations draw in numpy from a generator the loader seeds with (seed, epoch, position
in epoch), so an epoch's augmentation is the same in a fresh run, a resumed run and with any
number of workers. MindSpore's RandomCrop/RandomHorizontalFlip draw from pipeline state that
restarts when a run resumes. Normalisation, layout and test-time resizing use
`mindspore.dataset.vision` (or numpy, when an augmentation works on normalised images).
"""

from typing import List

import mindspore.dataset.vision as vision

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


def test_transforms(height: int, width: int) -> List:
    """Deterministic pipeline for query/gallery images."""
    return [vision.Resize((height, width))] + normalise_ops()
