"""What a ddag checkpoint says about itself: `CheckpointMeta`, written and read only here.

Metadata lives inside the checkpoint file as JSON (`ddag.io.checkpoint` stores the text). It is
untrusted data: `CheckpointMeta.from_dict` keeps only plain values of the expected types, so a
damaged or crafted file cannot make a caller build or read something it did not ask for.

Format versions: 1 (before `format_version` was written: input size inside the run config) and
2 (this module: input size and normalisation as their own field).
"""

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional

from ddag.data.loader import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE
from ddag.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ddag.errors import CheckpointError

FORMAT_VERSION = 2
KINDS = ("run", "ddag", "backbone")  # a training run's, a converted DDAG, converted backbone


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
        format_version: 1 for files written before this field existed.
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
        if not isinstance(raw, dict):
            raise CheckpointError("the checkpoint's metadata is not a mapping")
        model = raw.get("model")
        if model is not None and not isinstance(model, dict):
            raise CheckpointError("its stored model is not a mapping; the file is damaged")
        config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
        version = raw.get("format_version", 1)
        if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
            raise CheckpointError(
                f"the checkpoint's format version is {version!r}; this ddag reads versions 1 to "
                f"{FORMAT_VERSION}. Update ddag to read files written by a newer one"
            )
        stored_input = raw.get("input") if version >= 2 else config.get("loader")
        kind = raw.get("kind")
        if kind not in KINDS:
            kind = "backbone" if isinstance(raw.get("backbone"), dict) else "run"
        return cls(
            kind=kind,
            model=model,
            input=InputSpec.from_dict(stored_input),
            dataset=_text(raw.get("dataset")),
            config=config,
            config_hash=_text(raw.get("config_hash")),
            state=raw.get("state") if isinstance(raw.get("state"), dict) else None,
            backbone=raw.get("backbone") if isinstance(raw.get("backbone"), dict) else None,
            source=_text(raw.get("converted_from")),
            format_version=version,
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
