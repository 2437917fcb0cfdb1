"""Dataset interface shared by the synthetic, RegDB and SYSU-MM01 readers.

A dataset hands out `ImageSet`s: images of one modality with identities, cameras and names.
Training sets carry labels relabelled to 0..num_ids-1; test sets keep the original identities.
"""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from ddag.errors import DatasetError

MODALITIES = ("visible", "thermal")


class ImageSet:
    """Random-access images of one modality.

    Attributes:
        ids: (N,) int identity per image.
        cams: (N,) int camera per image.
        names: N names (file paths or synthetic names), used in reports and SYSU gallery sampling.
    """

    def __init__(self, ids, cams, names: List[str]):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.cams = np.asarray(cams, dtype=np.int64)
        self.names = list(names)
        if not (len(self.ids) == len(self.cams) == len(self.names)):
            raise DatasetError("ids, cams and names of an image set differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> np.ndarray:
        """Image `index` as (H, W, 3) uint8 RGB."""
        raise NotImplementedError


class ArrayImageSet(ImageSet):
    """Images held in memory as one (N, H, W, 3) uint8 array."""

    def __init__(self, images: np.ndarray, ids, cams, names: List[str]):
        super().__init__(ids, cams, names)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(self.ids):
            raise DatasetError(
                f"expected (N, H, W, 3) images for {len(self.ids)} ids, got {images.shape}"
            )
        self.images = images

    def load(self, index: int) -> np.ndarray:
        return self.images[index]


class FileImageSet(ImageSet):
    """Images read from files, converted to RGB and resized to (height, width) when loaded."""

    def __init__(self, paths: List[str], ids, cams, height: int, width: int):
        super().__init__(ids, cams, [str(p) for p in paths])
        self.size = (int(width), int(height))

    def load(self, index: int) -> np.ndarray:
        return read_rgb(self.names[index], self.size)


def read_rgb(path: str, size=None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (grayscale/RGBA converted), optionally resized.

    `size` is (width, height); resizing uses Lanczos (the reference's ANTIALIAS).
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != tuple(size):
                image = image.resize(tuple(size), Image.LANCZOS)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError as err:
        raise DatasetError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"cannot read image {path}: {err}. Replace or remove the file.") from err


@dataclass
class Split:
    """Images of both modalities for one purpose (train, val or test)."""

    visible: ImageSet
    thermal: ImageSet

    def modality(self, name: str) -> ImageSet:
        if name not in MODALITIES:
            raise DatasetError(f"unknown modality {name!r}; must be one of {MODALITIES}")
        return getattr(self, name)


class VIReIDDataset:
    """A visible-infrared re-ID dataset.

    Subclasses set `name` and implement `train_split`, `test_split` and optionally `val_split`.
    """

    name = "dataset"

    def train_split(self) -> Split:
        """Training images; `ids` relabelled to 0..num_train_ids-1."""
        raise NotImplementedError

    def val_split(self) -> Optional[Split]:
        """Validation identities (disjoint from train and test) for model selection, if any."""
        return None

    def test_split(self) -> Split:
        """Test images with their original identities and cameras."""
        raise NotImplementedError

    @property
    def num_train_ids(self) -> int:
        split = self.train_split()
        return int(max(split.visible.ids.max(), split.thermal.ids.max())) + 1

    def default_protocols(self) -> list:
        """Evaluation protocols used when the config does not name any."""
        raise NotImplementedError

    def check(self, decode: bool = False):
        """A `ddag.data.doctor.DoctorReport` of the data; None when there is nothing to check."""
        return None
