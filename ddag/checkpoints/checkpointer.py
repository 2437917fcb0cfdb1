"""`Checkpointer`: every way a network meets a file, in one place.

Save and read ddag checkpoints, build the network a checkpoint holds, continue a run from one
(`resume_point` + `restore`), and initialise a new network from pretrained weights of any origin
(`initialise`, the config's `init` section). Models read no files: the task builds the network
from its spec, then hands it here, as detectron2's `DetectionCheckpointer` and torchtune's
checkpointers do.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ddag.checkpoints.download import KNOWN_WEIGHTS, is_remote, read_downloaded
from ddag.checkpoints.format import (
    LoadReport,
    load_into,
    read_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from ddag.checkpoints.meta import CheckpointMeta
from ddag.checkpoints.network import LoadedNetwork, network_from
from ddag.checkpoints.weight_files import read_weights
from ddag.errors import CheckpointError, ConfigError
from ddag.utils.logging import get_logger

log = get_logger(__name__)

LAST, BEST = "last.ckpt", "best.ckpt"
# Optimiser entries that are functions of the run config (the per-step learning rates and the
# momentum factor), not training state: a resume takes them from the config it continues with,
# so an accepted change (task.resume_changes=true optimizer.lr=...) takes effect.
CONFIG_DERIVED = re.compile(r"^optimizer\.(learning_rate\S*|momentum)$")


@dataclass
class InitSettings:
    """Initial weights of a new network, loaded after it is built (never on resume: a resumed
    network takes every weight from its checkpoint).

    Attributes:
        weights: ImageNet backbone weights for every stem and the trunk: a MindSpore `.ckpt`
            (model-zoo names), a torchvision/timm `.pth` or `.safetensors`, an http(s) URL, or a
            short name such as `resnet50_tv` (downloaded once into $DDAG_CACHE, sha256-checked).
        sha256: expected sha256 (or its first >= 8 hex digits) of a URL's file.
        strict: a file that misses or mis-shapes a backbone parameter is an error.
    """

    weights: Optional[str] = None
    sha256: Optional[str] = None
    strict: bool = True


@dataclass
class ResumePoint:
    """The checkpoint a run continues from: its file, tensors and metadata."""

    path: Path
    params: dict
    meta: CheckpointMeta


class Checkpointer:
    """Reads and writes every checkpoint and weight file of a run.

    Args:
        folder: the run's checkpoint folder (where `save(name)` writes and `task.resume=auto`
            looks for last.ckpt); None for tasks that only read.
    """

    def __init__(self, folder: Optional[Path] = None):
        self.folder = Path(folder) if folder is not None else None

    def save(self, name_or_path, network, optimizer=None, meta=None) -> Path:
        """Write `network` (+ optimiser state) and `meta` atomically under the folder."""
        path = Path(name_or_path)
        if self.folder is not None and not path.is_absolute() and path.parent == Path("."):
            path = self.folder / path
        return save_checkpoint(path, network, optimizer, meta)

    def load_network(self, path, fallback_model: Optional[dict] = None) -> LoadedNetwork:
        """The network of a ddag or MindSpore model-zoo DDAG checkpoint, weights loaded
        strictly; `fallback_model` serves ddag files that store no model spec. A run folder
        stands for its selected model, `checkpoints/best.ckpt`."""
        path = Path(path)
        if path.is_dir() and (path / "checkpoints" / BEST).is_file():
            log.info("%s is a run folder: using its selected model %s", path, BEST)
            path = path / "checkpoints" / BEST
        params, meta = read_checkpoint(path)
        return network_from(path, params, meta, fallback_model)

    def load_weights(self, network, path) -> LoadReport:
        """Copy a checkpoint's tensors into a built network of the same architecture (strict)."""
        return load_into(network, read_checkpoint(path)[0], strict=True)

    def read_weights(self, source: str, sha256: Optional[str] = None):
        """({MindSpore-style name: array}, local path) of a weight file of any supported format:
        a path, an http(s) URL or a short name (downloaded once, sha256-checked)."""
        return read_downloaded(str(source), read_weights, sha256)

    def resume_point(self, resume: str) -> Optional[ResumePoint]:
        """The checkpoint `task.resume` names (`auto`: the folder's last.ckpt, None when there
        is none yet), read once and checked to hold a training state."""
        if resume == "auto":
            if self.folder is None:
                raise ConfigError("task.resume=auto needs the run's checkpoint folder")
            path = self.folder / LAST
            if not path.is_file():
                log.info("task.resume=auto: no %s yet, starting from scratch", path)
                return None
        else:
            path = Path(resume)
        remove_stale_temporaries(path.parent)
        params, meta = read_checkpoint(path)
        if meta.state is None:
            raise ConfigError(f"task.resume={path}: the checkpoint has no training state to resume")
        return ResumePoint(path, params, meta)

    def resumed_network(self, point: ResumePoint, fallback_model: Optional[dict] = None):
        """The network of a resume point, every weight from the checkpoint."""
        return network_from(point.path, point.params, point.meta, fallback_model).network

    def restore(self, point: ResumePoint, network, optimizer) -> dict:
        """Load the optimiser state of `point` into `optimizer`; returns the stored loop state
        (`network` holds the checkpoint's weights already, `resumed_network`)."""
        state = {
            k: v
            for k, v in point.params.items()
            if k.startswith("optimizer.") and not CONFIG_DERIVED.match(k)
        }
        load_into(network, state, strict=False, optimizer=optimizer)
        return point.meta.state

    def initialise(self, network, init: InitSettings) -> Optional[LoadReport]:
        """Load `init.weights` into the backbone of a new network; None when none are set.

        The network says where the file's entries belong (`backbone_weights`): every stem gets
        the stem's, the trunk the trunk's; parts no ImageNet file holds keep their init.
        """
        if not init.weights:
            return None
        place = getattr(network, "backbone_weights", None)
        if place is None:
            raise ConfigError(
                f"init.weights={init.weights}: a {type(network).__name__} network takes no "
                "backbone weights; leave init.weights unset"
            )
        if not is_remote(str(init.weights)) and not Path(init.weights).is_file():
            raise CheckpointError(
                f"init.weights: weight file not found: {init.weights}. Put ImageNet weights of "
                "the backbone there (task=convert task.source=<torchvision .pth> makes a "
                "MindSpore one), or set init.weights to another file, an http(s) URL or a short "
                f"name ({', '.join(KNOWN_WEIGHTS)}: downloaded once and checked), or init=none "
                "to start from random weights"
            )
        arrays, source = self.read_weights(init.weights, init.sha256)
        mapped, scope, optional = place(arrays)
        if not mapped:
            raise CheckpointError(
                f"{source}: none of its tensors belongs to this network's backbone; it is not "
                "ImageNet weights of the configured backbone family"
            )
        report = load_into(
            network, mapped, strict=init.strict, ignore_missing=optional, scope=scope
        )
        log.info("initial weights %s -> backbone: %s", init.weights, report.summary())
        return report
