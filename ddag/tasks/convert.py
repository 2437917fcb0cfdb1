"""task=convert: a PyTorch (or any supported) weight file as a MindSpore checkpoint + load report.

ImageNet ResNets become backbone checkpoints (model-zoo names) for `init.weights`;
reference DDAG checkpoints (`{'net': state_dict}` of mangye16/DDAG) and DEEN checkpoints
(ZYK100/LLCM DEEN/model.py embed_net, recognised by their DEE and MFA names) become full ddag
checkpoints for `task=eval`, `extract`, `search`, `export` and the Python API.
"""

import json

import mindspore as ms

from ddag.checkpoints.checkpointer import Checkpointer
from ddag.checkpoints.conversion import (
    backbone_weights,
    deen_network,
    pmt_network,
    reference_ddag_network,
)
from ddag.checkpoints.meta import CheckpointMeta, InputSpec
from ddag.checkpoints.names import is_deen, is_pmt, is_reference_ddag
from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.tasks.steps.runtime import output_dir
from ddag.utils.logging import get_logger
from ddag.utils.paths import file_in

log = get_logger(__name__)

# The reference code trains and tests at --img_h 288 --img_w 144.
REFERENCE_INPUT = InputSpec(288, 144)
# DEEN's train.py and test.py default to --img_h 384 --img_w 144.
DEEN_INPUT = InputSpec(384, 144)
NETWORKS = {
    "ddag": (reference_ddag_network, REFERENCE_INPUT),
    "deen": (deen_network, DEEN_INPUT),
    "pmt": (pmt_network, None),  # the input size its spec holds
}


class _Arrays:
    """Named arrays as a network-like object for `Checkpointer.save`."""

    def __init__(self, arrays):
        self._params = [ms.Parameter(ms.Tensor(v), name=k) for k, v in sorted(arrays.items())]

    def get_parameters(self):
        return iter(self._params)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    task = config.task
    kind = task.kind
    out_dir = output_dir(config)
    target = file_in(out_dir, task.output, "task.output")
    checkpointer = Checkpointer()
    arrays, source = checkpointer.read_weights(task.source, task.sha256)
    if kind == "auto":
        kind = next(
            (
                k
                for k, found in (("deen", is_deen), ("ddag", is_reference_ddag), ("pmt", is_pmt))
                if found(arrays)
            ),
            "backbone",
        )
    source_text = task.source
    if kind in NETWORKS:
        convert_network, size = NETWORKS[kind]
        network, spec, report, unused = convert_network(arrays)
        if size is None:  # a ViT's spec holds its input size: the grid of its position embedding
            size = InputSpec(spec["backbone"]["height"], spec["backbone"]["width"])
        meta = CheckpointMeta(kind=kind, model=spec, input=size, source=source_text)
        checkpointer.save(target, network, meta=meta)
        summary = {"model": spec, "unused": unused}
    else:
        kept, spec, report, unused = backbone_weights(arrays, str(source))
        meta = CheckpointMeta(kind=kind, backbone=spec, source=source_text)
        checkpointer.save(target, _Arrays(kept), meta=meta)
        summary = {"backbone": spec, "unused": unused}
    summary.update(source=str(source), output=str(target), kind=kind, loaded=len(report.loaded))
    (out_dir / "convert_report.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "converted %s (%s) -> %s: %s; %d entries not used%s",
        source,
        kind,
        target,
        report.summary(),
        len(unused),
        f" ({', '.join(unused[:6])}{' ...' if len(unused) > 6 else ''})" if unused else "",
    )
    return summary
