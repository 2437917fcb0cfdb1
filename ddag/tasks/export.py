"""task=export: the inference graph (images + modality input) as MINDIR or ONNX, verified."""

import mindspore as ms
import numpy as np
from omegaconf import DictConfig

from ddag.errors import ConfigError
from ddag.models.ddag import (
    EXPORT_FORMATS as FORMATS,
)
from ddag.models.ddag import (
    THERMAL,
    VISIBLE,
    EmbeddingNet,
    ModalityEmbeddingNet,
)
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run_exported(path, images: np.ndarray, modality: int):
    """(FC, FC_att) from an exported file, reloaded with MindSpore (MINDIR) or onnxruntime."""
    modality_input = np.array([modality], np.int32)
    if str(path).endswith(".mindir"):
        graph = ms.nn.GraphCell(ms.load(str(path)))
        return [o.asnumpy() for o in graph(ms.Tensor(images), ms.Tensor(modality_input))]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {names[0]: images, names[1]: modality_input})


def run(cfg: DictConfig) -> dict:
    common.setup(cfg)
    fmt = str(cfg.task.format).upper()
    if fmt not in FORMATS:
        raise ConfigError(f"task.format={cfg.task.format!r}; choose one of {list(FORMATS)}")
    model, _ = common.inference_model(cfg)
    network = model.network
    network.set_train(False)
    batch = int(cfg.task.batch_size)
    shape = (batch, 3, model.height, model.width)
    sample = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = common.output_dir(cfg) / f"ddag{FORMATS[fmt]}"
    # MindSpore 2.8 cannot reload a MINDIR with a dynamic batch, so the batch size is fixed.
    ms.export(
        ModalityEmbeddingNet(network),
        ms.Tensor(sample),
        ms.Tensor(np.array([1], np.int32)),
        file_name=str(out.with_suffix("")),
        file_format=fmt,
    )
    differences = {}
    for name, code in (("visible", VISIBLE), ("thermal", THERMAL)):
        expected = [t.asnumpy() for t in EmbeddingNet(network, code)(ms.Tensor(sample))]
        got = run_exported(out, sample, code)
        differences[name] = float(max(np.abs(a - b).max() for a, b in zip(expected, got)))
    log.info(
        "exported %s (input images %s float32 + modality (1,) int32: 1 visible, 2 thermal); "
        "max |difference| to the checkpoint's features: %s",
        out,
        shape,
        differences,
    )
    return {"path": str(out), **{f"max_abs_diff/{k}": v for k, v in differences.items()}}
