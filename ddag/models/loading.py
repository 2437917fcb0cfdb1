"""Networks from model specs and checkpoint files (used by the tasks and by `ddag.api`).

A checkpoint written by ddag carries its model spec (built by `ddag.models.architecture`, which
admits only `ddag.models` classes and plain values); a MindSpore model-zoo DDAG checkpoint is
recognised by its parameter names and built with the port's layout.
"""

import copy
from pathlib import Path
from typing import Optional, Tuple

from ddag.data.loader import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE
from ddag.errors import CheckpointError, ConfigError
from ddag.io.checkpoint import (
    LoadReport,
    is_ms_zoo_checkpoint,
    load_into,
    ms_zoo_to_ddag,
    read_checkpoint,
)
from ddag.models.architecture import build_spec, check_spec
from ddag.models.spec_check import spec_mismatches
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


def build_network(model: dict, num_classes: int):
    """A DDAG network from a plain model spec; absent/empty attention options mean none.

    Built by `ddag.models.architecture`, which admits only `ddag.models` classes and plain
    values, whether the spec comes from the user's config or from a checkpoint file.
    """
    model = copy.deepcopy(model)
    for branch in ("part_attention", "graph_attention"):
        if not model.get(branch):
            model[branch] = None
    return build_spec(model, num_classes=num_classes)


def num_classes_of(params: dict, path) -> int:
    weight = params.get("classifier.weight")
    if weight is None:
        raise CheckpointError(f"{path} has no classifier.weight: it is not a DDAG checkpoint")
    return int(weight.shape[0])


def network_for_checkpoint(path, fallback_model: Optional[dict] = None) -> Tuple:
    """(network, LoadReport, metadata) for a ddag or MindSpore model-zoo DDAG checkpoint.

    ddag checkpoints carry their model config; `fallback_model` serves older ones.
    """
    path = Path(path)
    params, meta = read_checkpoint(path)
    if is_ms_zoo_checkpoint(params):
        log.info(
            "%s is a MindSpore model-zoo DDAG checkpoint: using its layout (shared ResNet-50 "
            "for both modalities, IWPA without bias, no graph branch)",
            path,
        )
        network = build_network(MODEL_ZOO_DDAG, num_classes_of(params, path))

        def rename(name):
            return None if name.startswith("graph_att.") else ms_zoo_to_ddag(name, "shared")

        return network, load_into(network, params, strict=True, rename=rename), meta
    model = meta.get("model") or fallback_model
    if model is None:
        raise CheckpointError(f"{path} does not say which model it holds; pass the model config")
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: its stored model is not a mapping; the file is damaged")
    model = copy.deepcopy(model)
    if isinstance(model.get("backbone"), dict):
        model["backbone"].pop("pretrained", None)  # the weights come from the checkpoint
    try:
        check_spec(model)
        problems = spec_mismatches(model, {name: tuple(p.shape) for name, p in params.items()})
        if problems:
            raise CheckpointError(
                f"{path}: the architecture stored in the checkpoint does not match its tensors "
                f"({'; '.join(problems[:4])}); the file is damaged or crafted, nothing was built"
            )
        network = build_network(model, num_classes_of(params, path))
    except ConfigError as err:
        raise CheckpointError(
            f"{path}: the architecture stored in the checkpoint is refused: {err}. A checkpoint "
            "may only name ddag.models components with plain values; nothing was built"
        ) from None
    except RecursionError:
        raise CheckpointError(f"{path}: its stored architecture is nested too deeply") from None
    report: LoadReport = load_into(network, params, strict=True)
    return network, report, meta


def stored_input_size(meta: dict) -> dict:
    """{"height": int, "width": int} a ddag checkpoint was trained with; only what is stored as
    plain integers (metadata is untrusted data), so {} for model-zoo or damaged files."""
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    loader = config.get("loader") if isinstance(config.get("loader"), dict) else {}
    size = {
        key: loader[key]
        for key in ("height", "width")
        if isinstance(loader.get(key), int) and not isinstance(loader.get(key), bool)
    }
    if any(not MIN_IMAGE_SIDE <= v <= MAX_IMAGE_SIDE for v in size.values()):
        raise CheckpointError(
            f"the checkpoint's stored input size {size} is outside {MIN_IMAGE_SIDE}.."
            f"{MAX_IMAGE_SIDE} pixels: the file is damaged or crafted"
        )
    return size
