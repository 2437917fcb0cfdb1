"""Images of a folder (recursively), for extraction and search outside a dataset layout."""

from pathlib import Path

from ddag.data.datasets.base import IMAGE_SUFFIXES, FileImageSet, is_image_file
from ddag.errors import DatasetError
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def folder_images(folder, height: int, width: int) -> FileImageSet:
    """Every image file below `folder`, sorted by path.

    The identity of an image is its parent folder's name when that is a number (the layout
    `<folder>/<id>/<image>` of both datasets), otherwise -1 (unknown); cameras are unknown (-1).
    Files that are not images by their suffix are skipped with a warning naming them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if is_image_file(p)]
    others = [p for p in files if not is_image_file(p)]
    if others:
        log.warning(
            "skipping %d non-image file(s) in %s: %s",
            len(others),
            folder,
            ", ".join(str(p.relative_to(folder)) for p in others[:5]),
        )
    if not images:
        raise DatasetError(f"no images in {folder} (looked for {list(IMAGE_SUFFIXES)})")
    name_ids = [p.parent.name for p in images]  # ASCII digits: "²" passes isdigit alone
    ids = [int(n) if n.isascii() and n.isdigit() and len(n) < 10 else -1 for n in name_ids]
    return FileImageSet(images, ids, [-1] * len(images), height, width)
