"""Epoch windows: a loss term or an augmentation active for some epochs only.

PMT trains progressively (hulu88/PMT `train.py`, `PL_EPOCH`): its first epochs see gray visible
images and triplets within each modality, the later ones RGB images with the joint triplet, DCL
and MSEL. ddag expresses such phases as config: any node of `loss` or `loader.augment` may carry
`from_epoch` (first 0-based epoch it acts in, default 0) and `until_epoch` (first epoch it no
longer acts in, default never). The keys are taken off the node before it is built, so no term
or augmentation has to know about them.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from ddag.errors import ConfigError

WINDOW_KEYS = ("from_epoch", "until_epoch")
# Config sections whose direct children may carry a window.
WINDOWED_SECTIONS = ("loss", "loader.augment")
MAX_EPOCH = 100_000


@dataclass(frozen=True)
class EpochWindow:
    """Epochs `from_epoch <= epoch < until_epoch` (0-based; `until_epoch` None: no end)."""

    from_epoch: int = 0
    until_epoch: Optional[int] = None

    def active(self, epoch: int) -> bool:
        """Whether the node acts during 0-based `epoch`."""
        return epoch >= self.from_epoch and (self.until_epoch is None or epoch < self.until_epoch)

    @property
    def always(self) -> bool:
        return self.from_epoch == 0 and self.until_epoch is None

    def describe(self) -> str:
        """`epochs 0-5` style text (0-based, inclusive) for start-up logs."""
        end = "end" if self.until_epoch is None else str(self.until_epoch - 1)
        return f"epochs {self.from_epoch}-{end}"


def _epoch_value(value: Any, key: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCH:
        raise ConfigError(f"{key}={value!r} must be an epoch number in 0..{MAX_EPOCH} or null")
    return value


def has_window(path: str) -> bool:
    """Whether the node at config `path` (`loss.dcl`) may carry an epoch window."""
    section, _, name = path.rpartition(".")
    return section in WINDOWED_SECTIONS and bool(name)


def split_window(node, where: str) -> Tuple[Any, EpochWindow]:
    """(node without the window keys, its EpochWindow); `where` names the node in errors
    (`loss.dcl`). A node without the keys comes back unchanged with the always-on window."""
    if not isinstance(node, Mapping) or not any(k in node for k in WINDOW_KEYS):
        return node, EpochWindow()
    plain = dict(node.items())
    start = _epoch_value(plain.pop("from_epoch", 0), f"{where}.from_epoch")
    stop = _epoch_value(plain.pop("until_epoch", None), f"{where}.until_epoch")
    start = start or 0
    if stop is not None and stop <= start:
        raise ConfigError(
            f"{where}: until_epoch={stop} must be after from_epoch={start}; the node would never "
            "act (set it to null to remove it)"
        )
    return plain, EpochWindow(start, stop)
