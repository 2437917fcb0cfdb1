"""Test-time feature extraction: every image of a set once, in fixed-size batches."""

import functools
from typing import Dict, Tuple

import mindspore as ms
import numpy as np

from ddag.data.datasets.base import ImageSet
from ddag.data.loader import LoaderSettings, source_errors, test_pipeline
from ddag.errors import EvaluationError
from ddag.models.ddag import THERMAL, VISIBLE, EmbeddingNet
from ddag.utils.logging import get_logger

log = get_logger(__name__)
MODALITY_CODES = {"visible": VISIBLE, "thermal": THERMAL}
PROGRESS_EVERY = 20  # batches between progress lines on long extractions


class FeatureExtractor:
    """Computes (FC, FC_att) features of image sets with a network in inference mode.

    Batches are padded to `settings.test_batch_size` so one compiled graph serves every batch.
    `forward_passes` counts network calls (tests use it to check features are extracted once).

    Args:
        network: a DDAG network.
        settings: image size, batch size and workers.
        flip: sum the features of each image and its horizontal mirror, L2-normalised again
            unless `raw_flip_sums` (DEEN's test.py ranks the plain sums by inner product;
            `eval.distance=inner` asks for that).
        engine: `engine(images, modality code) -> (FC, FC_att)` numpy arrays computing the
            network's features in another runtime (`onnx_engine.OnnxEngine`); None: MindSpore.
    """

    def __init__(
        self,
        network,
        settings: LoaderSettings,
        flip: bool = False,
        raw_flip_sums: bool = False,
        engine=None,
    ):
        self.settings = settings
        self.flip = flip
        self.raw_flip_sums = raw_flip_sums
        self.forward_passes = 0
        self.engine = engine
        self.backend = getattr(engine, "name", "mindspore") if engine is not None else "mindspore"
        self._nets = {name: EmbeddingNet(network, code) for name, code in MODALITY_CODES.items()}

    def flags(self) -> Dict[str, object]:
        """What the extractor did that results record: flip averaging and the backend."""
        return {"flip": self.flip, "backend": self.backend}

    def __call__(self, images: ImageSet, modality: str) -> Tuple[np.ndarray, np.ndarray]:
        """(FC, FC_att), each (N, C) float32 and L2-normalised, for every image of the set."""
        if self.engine is not None:
            net = functools.partial(self.engine, modality_code=MODALITY_CODES[modality])
        else:
            net = self._nets[modality]
            net.set_train(False)
        pipeline = test_pipeline(images, self.settings)
        with source_errors(pipeline):
            batches = list(self._batches(pipeline, net, self.settings.test_batch_size))
        features = tuple(np.concatenate([b[i] for b in batches]) for i in (0, 1))
        finite = np.all(np.isfinite(features[0]), axis=1) & np.all(np.isfinite(features[1]), axis=1)
        bad = int(np.count_nonzero(~finite))  # either feature: FC_att can fail where FC does not
        if bad:
            size = f"{self.settings.height}x{self.settings.width}"
            raise EvaluationError(
                f"the network gave NaN or infinite features for {bad} of {len(images)} "
                f"{modality} images at the {size} input (loader.height x loader.width). An input "
                "far smaller than the backbone is meant for (ResNet-50: 288x144 as in the "
                "paper) or BatchNorm statistics that have seen only a "
                "few steps give them: use a larger input (+debug=smoke for a short run), train "
                "longer, or check the checkpoint"
            )
        return features

    def _batches(self, pipeline, net, batch):
        """(FC, FC_att) per batch, the last one padded to `batch` and cut back."""
        total = pipeline.get_dataset_size()
        for index, (images_batch,) in enumerate(
            pipeline.create_tuple_iterator(output_numpy=True), start=1
        ):
            if total > PROGRESS_EVERY and index % PROGRESS_EVERY == 0:
                log.info("  batch %d/%d", index, total)
            count = len(images_batch)
            if count < batch:
                pad = np.repeat(images_batch[-1:], batch - count, axis=0)
                images_batch = np.concatenate([images_batch, pad])
            a, b = self._embed(net, images_batch)
            yield a[:count], b[:count]

    def _run(self, net, images_batch: np.ndarray):
        self.forward_passes += 1
        if self.engine is not None:
            return net(images_batch)
        return tuple(t.asnumpy() for t in net(ms.Tensor(images_batch)))

    def _embed(self, net, images_batch):
        a, b = self._run(net, images_batch)
        if self.flip:
            fa, fb = self._run(net, np.ascontiguousarray(images_batch[..., ::-1]))
            a, b = (
                (a + fa, b + fb) if self.raw_flip_sums else (_normalise(a + fa), _normalise(b + fb))
            )
        return a, b

    def split_features(self, split) -> Dict[str, Dict[str, np.ndarray]]:
        """{"visible"|"thermal": {"FC": array, "FC_att": array}} for a test split."""
        out = {}
        for modality in MODALITY_CODES:
            images = split.modality(modality)
            log.info("extracting %s features of %d images", modality, len(images))
            fc, fc_att = self(images, modality)
            out[modality] = {"FC": fc, "FC_att": fc_att}
        return out


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
