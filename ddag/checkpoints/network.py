"""`network_from`: the network of a checkpoint's tensors and metadata (`Checkpointer` reads
them), for the API, every inference task and `task.resume`.

A checkpoint written by ddag carries its model spec (built by `ddag.models.architecture`, which
admits only `ddag.models` classes and plain values), checked against the file's own tensor names
and shapes before anything is built: each component declares the tensors that witness what it
allocates (`expected_shapes`). A MindSpore model-zoo DDAG checkpoint is recognised by its
parameter names and built with the port's layout.
"""

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ddag.checkpoints.format import LoadReport, load_into
from ddag.checkpoints.meta import CheckpointMeta, InputSpec
from ddag.checkpoints.names import is_ms_zoo_checkpoint, ms_zoo_to_ddag
from ddag.errors import CheckpointError, ConfigError
from ddag.models.architecture import (
    build_network,
    check_spec,
    expected_shapes,
    network_spec,
    shape_mismatches,
)
from ddag.utils.logging import get_logger

log = get_logger(__name__)

# The MindSpore model-zoo DDAG network: one ResNet-50 for both modalities, 3-part IWPA whose
# 1x1 convolutions have no bias, and no usable graph branch (its heads were never saved).
MODEL_ZOO_DDAG = {
    "_target_": "ddag.models.ddag.DDAG",
    "stems": "shared",
    "low_dim": 512,
    "backbone": {
        "_target_": "ddag.models.backbones.resnet.ResNet",
        "layers": [3, 4, 6, 3],
        "widths": [64, 128, 256, 512],
        "stem_channels": 64,
        "last_stride": 1,
    },
    "part_attention": {
        "_target_": "ddag.models.attention.iwpa.WeightedPartAttention",
        "_partial_": True,
        "num_parts": 3,
        "conv_bias": False,
    },
    "graph_attention": None,
}
# The model-zoo port trains and tests at 288x144 and stores no size.
MODEL_ZOO_INPUT = InputSpec(288, 144)


@dataclass
class LoadedNetwork:
    """A network with its checkpoint's weights, what the load matched, and the metadata."""

    network: Any
    report: LoadReport
    meta: CheckpointMeta

    @property
    def input(self) -> Optional[InputSpec]:
        return self.meta.input

    @property
    def holds_model(self) -> bool:
        """Whether the file names its own model (then config `model` settings do not apply)."""
        return self.meta.model is not None


def num_classes_of(params: dict, path) -> int:
    weight = params.get("classifier.weight")
    if weight is None:
        raise CheckpointError(f"{path} has no classifier.weight: it is not a DDAG checkpoint")
    return int(weight.shape[0])


def network_from(path, params: dict, meta: CheckpointMeta, fallback_model=None) -> LoadedNetwork:
    """The network of a checkpoint already read (`ddag.checkpoints.format.read_checkpoint`),
    weights loaded strictly. ddag checkpoints carry their model spec; `fallback_model` serves
    older ones without it."""
    path = Path(path)
    if is_ms_zoo_checkpoint(params):
        log.info(
            "%s is a MindSpore model-zoo DDAG checkpoint: using its layout (shared ResNet-50 "
            "for both modalities, IWPA without bias, no graph branch)",
            path,
        )
        network = build_network(MODEL_ZOO_DDAG, num_classes_of(params, path))

        def rename(name):
            return None if name.startswith("graph_att.") else ms_zoo_to_ddag(name, "shared")

        report = load_into(network, params, strict=True, rename=rename)
        meta = CheckpointMeta(kind="run", model=MODEL_ZOO_DDAG, input=MODEL_ZOO_INPUT)
        return LoadedNetwork(network, report, meta)
    model = meta.model or fallback_model
    if model is None:
        raise CheckpointError(f"{path} does not say which model it holds; pass the model config")
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: its stored model is not a mapping; the file is damaged")
    network = _checked_network(path, copy.deepcopy(model), params)
    report = load_into(network, params, strict=True)
    return LoadedNetwork(network, report, meta)


def _checked_network(path: Path, model: dict, params: dict):
    """The network of `model`, after checking the spec against the file's tensors."""
    try:
        check_spec(network_spec(model))
        num_classes = num_classes_of(params, path)
        stored = {name: tuple(p.shape) for name, p in params.items()}
        problems = shape_mismatches(expected_shapes(model, num_classes), stored)
        if problems:
            raise CheckpointError(
                f"{path}: the architecture stored in the checkpoint does not match its tensors "
                f"({'; '.join(problems[:4])}); the file is damaged or crafted, nothing was built"
            )
        return build_network(model, num_classes)
    except ConfigError as err:
        raise CheckpointError(
            f"{path}: the architecture stored in the checkpoint is refused: {err}. A checkpoint "
            "may only name ddag.models components with plain values; nothing was built"
        ) from None
    except RecursionError:
        raise CheckpointError(f"{path}: its stored architecture is nested too deeply") from None
