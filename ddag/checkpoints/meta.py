"""What a ddag checkpoint says about itself: `CheckpointMeta`, and `upgrade` for older files.

Metadata lives inside the checkpoint file as JSON (`ddag.checkpoints.format` stores the text).
It is untrusted data: `CheckpointMeta.from_dict` keeps only plain values of the expected types,
so a damaged or crafted file cannot make a caller build or read something it did not ask for.

Format versions, each older one brought to today's by `upgrade` (the only place that knows
them):
1. before `format_version` was written: the input size inside the run config's loader;
2. input size and normalisation as their own field; the backbone spec may name its ImageNet
   weights (`pretrained`, `pretrained_sha256`, `strict`), and run configs stored before the
   `loader.augment` group have none;
3. (today) models read no files: initial weights are the run config's `init` section.
"""

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Optional

from ddag.data.loader import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE
from ddag.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ddag.errors import CheckpointError

FORMAT_VERSION = 3
# A training run's, a converted reference DDAG or DEEN network, converted backbone weights.
KINDS = ("run", "ddag", "deen", "pmt", "backbone")


@dataclass(frozen=True)
class InputSpec:
    """The images a network was trained on: size and per-channel normalisation (0-1 scale)."""

    height: int
    width: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def to_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, raw) -> Optional["InputSpec"]:
        """The stored input spec; None when the file stores no plain height and width."""
        if not isinstance(raw, dict):
            return None
        size = {k: raw.get(k) for k in ("height", "width")}
        if not all(_is_int(v) for v in size.values()):
            return None
        if any(not MIN_IMAGE_SIDE <= v <= MAX_IMAGE_SIDE for v in size.values()):
            raise CheckpointError(
                f"the checkpoint's stored input size {size} is outside {MIN_IMAGE_SIDE}.."
                f"{MAX_IMAGE_SIDE} pixels: the file is damaged or crafted"
            )
        mean, std = _triple(raw.get("mean"), IMAGENET_MEAN), _triple(raw.get("std"), IMAGENET_STD)
        return cls(size["height"], size["width"], mean, std)


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything a checkpoint records beside its tensors.

    Attributes:
        kind: "run" (written by task=train), "ddag" (a converted DDAG network) or "backbone"
            (converted ImageNet weights for `model.backbone.pretrained`).
        model: the model spec (`_target_` names of ddag.models components and plain values).
        input: image size and normalisation the network was trained with.
        dataset: name of the training dataset.
        config: the run's resolved configuration (what `task.resume` continues).
        config_hash: short hash of that configuration.
        state: the training loop's state (`ddag.engine.trainer.TrainState.to_meta`).
        backbone: the spec of converted backbone weights.
        source: where converted weights came from.
        format_version: the version the file was written in (`upgrade` brought it to today's).
    """

    kind: str = "run"
    model: Optional[dict] = None
    input: Optional[InputSpec] = None
    dataset: Optional[str] = None
    config: Dict[str, Any] = field(default_factory=dict)
    config_hash: Optional[str] = None
    state: Optional[dict] = None
    backbone: Optional[dict] = None
    source: Optional[str] = None
    format_version: int = FORMAT_VERSION

    def with_state(self, state: dict) -> "CheckpointMeta":
        """A copy holding the training loop state `state`."""
        return replace(self, state=state)

    def stored_config(self, *keys: str) -> Any:
        """A plain value of the stored run config by path, None when absent or not plain."""
        node: Any = self.config
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, (str, int, float)) and not isinstance(node, bool) else None

    def to_dict(self) -> dict:
        data = {
            "format_version": self.format_version,
            "kind": self.kind,
            "model": self.model,
            "input": self.input.to_dict() if self.input else None,
            "dataset": self.dataset,
            "config": self.config,
            "config_hash": self.config_hash,
            "state": self.state,
            "backbone": self.backbone,
            "converted_from": self.source,
        }
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict) -> "CheckpointMeta":
        """The metadata of a checkpoint file (any format version); {} for foreign files."""
        raw = upgrade(raw)
        model = raw.get("model")
        if model is not None and not isinstance(model, dict):
            raise CheckpointError("its stored model is not a mapping; the file is damaged")
        config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
        kind = raw.get("kind")
        if kind not in KINDS:
            kind = "backbone" if isinstance(raw.get("backbone"), dict) else "run"
        return cls(
            kind=kind,
            model=model,
            input=InputSpec.from_dict(raw.get("input")),
            dataset=_text(raw.get("dataset")),
            config=config,
            config_hash=_text(raw.get("config_hash")),
            state=raw.get("state") if isinstance(raw.get("state"), dict) else None,
            backbone=raw.get("backbone") if isinstance(raw.get("backbone"), dict) else None,
            source=_text(raw.get("converted_from")),
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value) -> Optional[str]:
    return value if isinstance(value, str) else None


def _triple(value, default: tuple) -> tuple:
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return tuple(float(v) for v in value)
    return tuple(default)


# The backbone spec keys that named initial weights before format 3, and their `init` keys.
_INIT_KEYS = {"pretrained": "weights", "pretrained_sha256": "sha256", "strict": "strict"}
# What runs trained with before the `loader.augment` group existed (format 2 files may lack it).
_PAD_CROP_FLIP = "ddag.data.augmentations.pad_crop_flip.PadCropFlip"


def _to_2(raw: dict) -> dict:
    """Version 1 kept the input size only in the run config's loader."""
    config = raw.get("config")
    if "input" not in raw and isinstance(config, dict):
        raw["input"] = config.get("loader")
    return raw


def _to_3(raw: dict) -> dict:
    """Models read no files: the backbone's weight keys leave the model spec and the stored run
    config's `model.backbone` for the config's `init` section; a run config without
    `loader.augment` gets the pad/crop/flip it trained with, at its own padding and flip."""
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("backbone"), dict):
        for key in _INIT_KEYS:
            model["backbone"].pop(key, None)
    config = raw.get("config")
    if not isinstance(config, dict):
        return raw
    model_config = config.get("model")
    backbone = model_config.get("backbone") if isinstance(model_config, dict) else None
    if isinstance(backbone, dict):
        moved = {new: backbone.pop(old) for old, new in _INIT_KEYS.items() if old in backbone}
        if "init" not in config:
            config["init"] = {"weights": None, "sha256": None, "strict": True, **moved}
    loader = config.get("loader")
    if isinstance(loader, dict) and "augment" not in loader:
        loader["augment"] = {
            "pad_crop_flip": {
                "_target_": _PAD_CROP_FLIP,
                "padding": loader.get("padding", 10),
                "flip": loader.get("flip", True),
            }
        }
    return raw


# UPGRADES[v] turns a version-v dict into a version-(v + 1) one.
UPGRADES: Dict[int, Callable[[dict], dict]] = {1: _to_2, 2: _to_3}


def upgrade(raw: Any) -> dict:
    """A copy of raw checkpoint metadata of any readable format version in today's format.

    The one place that knows older formats: every reader of metadata goes through it, so the
    model spec and the stored run config are always today's keys.
    """
    if not isinstance(raw, dict):
        raise CheckpointError("the checkpoint's metadata is not a mapping")
    version = raw.get("format_version", 1)
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"the checkpoint's format version is {version!r}; this ddag reads versions 1 to "
            f"{FORMAT_VERSION}. Update ddag to read files written by a newer one"
        )
    raw = copy.deepcopy(raw)
    for step in range(version, FORMAT_VERSION):
        raw = UPGRADES[step](raw)
    raw["format_version"] = FORMAT_VERSION
    return raw
