"""Dataset interface shared by the synthetic, RegDB and SYSU-MM01 readers.

A dataset hands out `ImageSet`s: images of one modality with identities, cameras and names.
Training sets carry labels relabelled to 0..num_ids-1; test sets keep the original identities.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ddag.errors import DatasetError

MODALITIES = ("visible", "thermal")
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    """An image by its suffix, and not a hidden file (.DS_Store, ._name copies of macOS)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


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


def read_text(path: Path) -> str:
    """Text of a dataset's index or split file; DatasetError naming it if it is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(
            f"{path} is not a UTF-8 text file ({err.reason} at byte {err.start}); restore it "
            "from the original archive"
        ) from err


def read_rgb(path: str, size=None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, optionally resized.

    Grayscale, palette and RGBA images are converted; 16-bit and 32-bit integer grayscale
    (thermal cameras often write 16-bit PNG or TIFF) is scaled to 0-255 by its bit depth, not
    clipped. An EXIF orientation is applied first. `size` is (width, height); resizing uses
    Lanczos (the reference's ANTIALIAS).
    Files that Pillow flags as decompression bombs are refused.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = _upright(image)
                image = _to_rgb(image)
                if size is not None and image.size != tuple(size):
                    image = image.resize(tuple(size), Image.LANCZOS)
                return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError as err:
        raise DatasetError(f"image file not found: {path}") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DatasetError(
            f"refusing image {path}: {err}. A person crop is a few hundred pixels; replace the "
            "file with the real image"
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot read image {path}: {err}. Replace or remove the file.") from err


_ORIENTATION_TAG = 0x0112


def _upright(image: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: a JPEG's EXIF orientation (a camera held sideways)
    applied, as every viewer does; images without one are returned as they are."""
    if image.getexif().get(_ORIENTATION_TAG, 1) in (0, 1):
        return image
    return ImageOps.exif_transpose(image)


_WIDE_GRAY_MAX = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535}


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of `image`; wide grayscale modes are scaled down instead of clipped."""
    if image.mode in _WIDE_GRAY_MAX or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = values.max(initial=0)
        top = _WIDE_GRAY_MAX.get(image.mode)
        if image.mode == "I":  # 32-bit integers: 8-bit or 16-bit data, told apart by the range
            top = 255 if peak <= 255 else 65535 if peak <= 65535 else None
        elif image.mode == "F":
            top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255 else None
        if top is None or values.min(initial=0) < 0:
            raise ValueError(f"unsupported pixel range for mode {image.mode}")
        gray = np.round(values * (255.0 / top)).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))
    return image.convert("RGB")


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

    def check(self, decode: bool = False):
        """A `ddag.data.doctor.DoctorReport` of the data; None when there is nothing to check."""
        return None
