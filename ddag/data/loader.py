"""`GeneratorDataset` pipelines: paired training batches and single-modality test batches.

The Python source always runs with one worker; `num_workers` parallelises the C++ transforms.
With several source worker threads, MindSpore 2.8 deadlocked when a pipeline that was not
drained was garbage-collected (`SamplerFn.__del__` joins threads blocked on a full queue),
which happened between the jobs of a multirun.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional

import mindspore.dataset as ds
import numpy as np

from ddag.data.augmentations.base import SECOND_VIEW, Augmentation, AugmentationPipeline
from ddag.data.augmentations.pad_crop_flip import PadCropFlip
from ddag.data.datasets.base import ImageSet
from ddag.data.sampler import IdentitySampler
from ddag.data.transforms import normalise_ops, test_transforms
from ddag.engine.phases import EpochWindow
from ddag.errors import DatasetError
from ddag.utils.fields import bounded

# Accepted image sides in pixels (the papers train at 288x144 and 384x144).
MIN_IMAGE_SIDE = 8
MAX_IMAGE_SIDE = 4096


class Batch(NamedTuple):
    """One training batch, the columns of `train_pipeline` in order: B visible and B thermal
    images (B,3,H,W) of the same B identities, and their labels (B,); with
    `visible_views=2`, 2B visible images and labels (the first views, then the second ones).
    The objective's step takes these first (`Objective.construct`), then its own per-step
    inputs."""

    visible: Any
    thermal: Any
    visible_label: Any
    thermal_label: Any


@dataclass
class LoaderSettings:
    """Batching and image settings shared by the train and test pipelines.

    Attributes:
        num_ids: P, identities per training batch (paper 8).
        num_instances: K, images per identity and modality (paper 4).
        height: network input height (paper 288).
        width: network input width (paper 144).
        padding: zero padding before the random crop (paper 10), read by the pad_crop_flip
            augmentation.
        flip: random horizontal flip, read by the pad_crop_flip augmentation.
        augment: the training augmentations by name, from the `loader/augment` config group
            (`_target_` nodes, built by the tasks; see ddag/data/augmentations/).
        visible_views: 2 puts every visible image in the batch twice, the second view also
            getting the augmentations for "second_view" (CAJ's joint learning: B thermal and
            2B visible images per step, the views in two blocks); 1 is the reference's.
        test_batch_size: images per inference batch.
        num_workers: parallel workers of the dataset pipeline.
    """

    num_ids: int = bounded(8, 1, 1024)
    num_instances: int = bounded(4, 1, 256)
    height: int = bounded(288, MIN_IMAGE_SIDE, MAX_IMAGE_SIDE)
    width: int = bounded(144, MIN_IMAGE_SIDE, MAX_IMAGE_SIDE)
    padding: int = bounded(10, 0, MAX_IMAGE_SIDE)
    flip: bool = True
    augment: Dict[str, Any] = field(default_factory=dict)
    visible_views: int = bounded(1, 1, 2)
    test_batch_size: int = bounded(64, 1, 4096)
    num_workers: int = bounded(1, 1, 64)


class _Source:
    """Remembers the DatasetError a read raised: MindSpore re-raises it as a RuntimeError."""

    failure = None

    def __getitem__(self, index):
        try:
            return self.read(index)
        except DatasetError as err:
            self.failure = err
            raise


@contextmanager
def source_errors(pipeline):
    """Turn a pipeline's wrapped RuntimeError back into the DatasetError its source raised."""
    try:
        yield
    except RuntimeError:
        failure = getattr(getattr(pipeline, "ddag_source", None), "failure", None)
        if failure is None:
            raise
        raise failure from None


class _PairSource(_Source):
    """Augmented (visible, thermal, visible_label, thermal_label) for each sampler slot."""

    def __init__(
        self,
        visible: ImageSet,
        thermal: ImageSet,
        sampler: IdentitySampler,
        augmentation: AugmentationPipeline,
        visible_views: int = 1,
    ):
        self.visible, self.thermal = visible, thermal
        self.sampler, self.augmentation = sampler, augmentation
        self.visible_views = visible_views

    def __len__(self):
        return len(self.sampler)

    def read(self, slot):
        epoch, position, v, t = self.sampler.pair_at(slot)
        rng = np.random.default_rng((self.sampler.seed, epoch, position))
        image = self.visible.load(v)
        visible = self.augmentation(image, "visible", rng, epoch)
        if self.visible_views == 2:  # CAJ's order: both visible views, then the thermal image
            visible = np.stack([visible, self.augmentation(image, SECOND_VIEW, rng, epoch)])
        return (
            visible,
            self.augmentation(self.thermal.load(t), "thermal", rng, epoch),
            np.int32(self.visible.ids[v]),
            np.int32(self.thermal.ids[t]),
        )


class _SingleSource(_Source):
    def __init__(self, images: ImageSet):
        self.images = images

    def __len__(self):
        return len(self.images)

    def read(self, index):
        return (self.images.load(int(index)),)


def train_pipeline(
    visible: ImageSet,
    thermal: ImageSet,
    sampler: IdentitySampler,
    settings: LoaderSettings,
    augmentations: Optional[List[Augmentation]] = None,
    windows: Optional[List[EpochWindow]] = None,
) -> ds.Dataset:
    """Batches of (visible (B,3,H,W), thermal (B,3,H,W), visible labels (B,), thermal labels (B,)).

    B is the sampler's batch size (P x K pairs); `settings.visible_views=2` doubles the visible
    columns (`Batch`). `augmentations` (built from `settings.augment`
    by the tasks) default to the reference's pad/crop/flip with `settings.padding` and `flip`;
    `windows` limit some of them to some epochs (`AugmentationPipeline`).
    """
    if augmentations is None:
        augmentations = [PadCropFlip(settings.padding, settings.flip)]
    views = settings.visible_views
    augmentation = AugmentationPipeline(
        augmentations, settings.height, settings.width, views == 2, windows
    )
    source = _PairSource(visible, thermal, sampler, augmentation, views)
    dataset = ds.GeneratorDataset(
        source,
        column_names=list(Batch._fields),
        sampler=sampler,
        num_parallel_workers=1,
        python_multiprocessing=False,
    )
    if not augmentation.normalises:  # else the augmentations normalised in numpy already
        for column in ("visible", "thermal"):
            dataset = dataset.map(
                normalise_ops(), input_columns=[column], num_parallel_workers=settings.num_workers
            )
    dataset = dataset.batch(sampler.batch_size, drop_remainder=True)
    if views == 2:
        dataset = dataset.map(
            _view_blocks,
            input_columns=["visible", "visible_label"],
            output_columns=["visible", "visible_label"],
        )
    dataset.ddag_source = source
    return dataset


def _view_blocks(visible: np.ndarray, labels: np.ndarray):
    """(B, 2, 3, H, W) visible views and (B,) labels -> (2B, 3, H, W) as [first views; second
    views] and (2B,) labels, the order CAJ concatenates them in."""
    views = np.ascontiguousarray(visible.transpose(1, 0, 2, 3, 4)).reshape(-1, *visible.shape[2:])
    return views, np.concatenate([labels, labels])


def test_pipeline(images: ImageSet, settings: LoaderSettings) -> ds.Dataset:
    """Batches of (images (B,3,H,W),) in set order; the last batch may be smaller."""
    source = _SingleSource(images)
    dataset = ds.GeneratorDataset(
        source,
        column_names=["image"],
        shuffle=False,
        num_parallel_workers=1,
        python_multiprocessing=False,
    )
    dataset = dataset.map(
        test_transforms(settings.height, settings.width),
        input_columns=["image"],
        num_parallel_workers=settings.num_workers,
    )
    dataset = dataset.batch(settings.test_batch_size, drop_remainder=False)
    dataset.ddag_source = source
    return dataset
