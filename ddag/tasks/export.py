"""task=export: the inference graph (images + modality input) as MINDIR or ONNX, verified."""

import mindspore as ms
import numpy as np

from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.models.ddag import EXPORT_FORMATS as FORMATS
from ddag.models.ddag import THERMAL, VISIBLE, EmbeddingNet, ModalityEmbeddingNet
from ddag.tasks.steps.networks import inference_model
from ddag.tasks.steps.runtime import output_dir, setup
from ddag.utils.logging import get_logger

log = get_logger(__name__)
# Names of the exported graph's inputs and outputs (ONNX; MINDIR keeps MindSpore's own).
INPUT_NAMES, OUTPUT_NAMES = ["images", "modality"], ["fc", "fc_att"]


def run_exported(path, images: np.ndarray, modality: int):
    """(FC, FC_att) from an exported file, reloaded with MindSpore (MINDIR) or onnxruntime."""
    modality_input = np.array([modality], np.int32)
    if str(path).endswith(".mindir"):
        graph = ms.nn.GraphCell(ms.load(str(path)))
        return [o.asnumpy() for o in graph(ms.Tensor(images), ms.Tensor(modality_input))]
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = (
        3  # the outputs' declared batch is the traced one (see onnx_engine)
    )
    session = onnxruntime.InferenceSession(str(path), options)
    return session.run(OUTPUT_NAMES, dict(zip(INPUT_NAMES, (images, modality_input))))


def run(config: Config, context: RunContext = RunContext()) -> dict:
    setup(config)
    fmt = config.task.format
    model, _ = inference_model(config, context)
    network = model.network
    network.set_train(False)
    batch = config.task.batch_size
    shape = (batch, 3, model.height, model.width)
    sample = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = output_dir(config) / f"ddag{FORMATS[fmt]}"
    inputs = (ms.Tensor(sample), ms.Tensor(np.array([1], np.int32)))
    if fmt == "ONNX":
        # Named inputs and outputs, and any batch size (the first axis of `images`).
        ms.onnx.export(
            ModalityEmbeddingNet(network, dynamic_batch=True),
            *inputs,
            file_name=str(out),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={"images": {0: "batch"}},
        )
    else:
        # MindSpore 2.8 cannot reload a MINDIR with a dynamic batch, so the batch size is fixed.
        ms.export(
            ModalityEmbeddingNet(network),
            *inputs,
            file_name=str(out.with_suffix("")),
            file_format=fmt,
        )
    differences = {}
    # ONNX is checked at another batch size than it was traced with: the batch is dynamic.
    check = sample if fmt != "ONNX" else np.concatenate([sample, sample[:1]], axis=0)
    for name, code in (("visible", VISIBLE), ("thermal", THERMAL)):
        expected = [t.asnumpy() for t in EmbeddingNet(network, code)(ms.Tensor(check))]
        got = run_exported(out, check, code)
        differences[name] = float(max(np.abs(a - b).max() for a, b in zip(expected, got)))
    batch_text = "any batch" if fmt == "ONNX" else f"batch {batch}"
    log.info(
        "exported %s (inputs images (%s, 3, %d, %d) float32 + modality (1,) int32: 1 visible, "
        "2 thermal; outputs fc, fc_att); max |difference| to the checkpoint's features: %s",
        out,
        batch_text,
        model.height,
        model.width,
        differences,
    )
    return {"path": str(out), **{f"max_abs_diff/{k}": v for k, v in differences.items()}}
