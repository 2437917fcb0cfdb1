"""ONNX Runtime as the inference engine of the feature extractor (`eval.backend=onnxruntime`).

The network's inference graph (images + modality in, FC and FC_att out, any batch) is exported
with MindSpore's ONNX exporter once per set of weights and input size, cached under
`$DDAG_CACHE/onnx/<sha256 of the weights>-<height>x<width>.onnx`, and run by an ONNX Runtime
session. A network whose graph cannot be exported falls back to MindSpore with a warning.
"""

import os
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import mindspore as ms
import numpy as np

from ddag.checkpoints.download import default_cache_dir
from ddag.checkpoints.format import parameter_digest
from ddag.errors import ConfigError
from ddag.models.ddag import VISIBLE, ModalityEmbeddingNet
from ddag.utils.logging import get_logger

log = get_logger(__name__)
BACKENDS = ("mindspore", "onnxruntime")
INPUT_NAMES, OUTPUT_NAMES = ("images", "modality"), ("fc", "fc_att")


def export_onnx(network, height: int, width: int, path: Path) -> None:
    """Write the inference graph of `network` to `path` (named inputs/outputs, any batch).

    Export marks the network's cells for a dynamic batch; the marks are undone afterwards, so
    the network runs in MindSpore exactly as before."""
    cells = [cell for _, cell in network.cells_and_names() if hasattr(cell, "dynamic_batch")]
    before = [cell.dynamic_batch for cell in cells]
    sample = ms.Tensor(np.zeros((2, 3, height, width), np.float32))
    try:
        ms.onnx.export(
            ModalityEmbeddingNet(network, dynamic_batch=True),
            sample,
            ms.Tensor(np.array([VISIBLE], np.int32)),
            file_name=str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={"images": {0: "batch"}},
        )
    finally:
        for cell, value in zip(cells, before):
            cell.dynamic_batch = value


class OnnxEngine:
    """(FC, FC_att) of a batch of images of one modality, from an ONNX Runtime session."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: Optional[int] = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # MindSpore's exporter declares the outputs with the traced batch (only inputs take
        # dynamic axes): ONNX Runtime would warn "VerifyOutputSizes" on every other batch size.
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        self.path = path
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, images: np.ndarray, modality_code: int) -> Tuple[np.ndarray, np.ndarray]:
        inputs = {
            "images": np.ascontiguousarray(images, np.float32),
            "modality": np.array([modality_code], np.int32),
        }
        fc, fc_att = self.session.run(list(OUTPUT_NAMES), inputs)
        return fc, fc_att


def onnx_engine(
    network, height: int, width: int, threads: Optional[int] = None, cache_dir=None
) -> Optional[OnnxEngine]:
    """An OnnxEngine for `network` at `height` x `width`, or None (after a warning) when its
    graph cannot be exported; ConfigError when onnxruntime is not installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(
            "eval.backend=onnxruntime needs the onnxruntime package: pip install -e '.[onnx]' "
            "(or eval.backend=mindspore)"
        ) from None
    digest = parameter_digest((p.name, p.asnumpy()) for p in network.get_parameters())
    folder = Path(cache_dir) if cache_dir else default_cache_dir() / "onnx"
    path = folder / f"{digest[:24]}-{height}x{width}.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=path.stem + ".", suffix=".onnx", dir=folder)
        os.close(fd)
        try:
            export_onnx(network, height, width, Path(temporary))
            os.replace(temporary, path)
        except Exception as err:  # any module without an ONNX mapping, now or later
            log.warning(
                "eval.backend=onnxruntime: this network's graph could not be exported to ONNX "
                "(%s: %s); features are computed with MindSpore",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            return None
        finally:
            Path(temporary).unlink(missing_ok=True)
        log.info("exported the inference graph for ONNX Runtime: %s", path)
    return OnnxEngine(path, threads)
