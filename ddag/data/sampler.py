"""DDAG's identity sampler over both modalities, as a `mindspore.dataset.Sampler`.

Reference: mangye16/DDAG `utils.py` (IdentitySampler). Per epoch: N = max(#visible, #thermal)
images, int(N / (P*K)) + 1 batches; each batch draws P identities without replacement, then for
each identity in turn K visible and K thermal images with replacement. Visible and thermal image
i of a batch share an identity. The order depends only on (seed, epoch), so runs and resumes
repeat; `draw_batches` with the legacy global generator gives the reference's exact indices.
"""

import mindspore.dataset as ds
import numpy as np

from ddag.errors import DatasetError


def draw_batches(rng, identities, visible_by_id, thermal_by_id, num_ids, num_instances, batches):
    """(visible, thermal) index arrays of `batches` P x K batches, in the reference's draw order.

    `rng` is anything with numpy's `choice` (a Generator, or a RandomState to repeat the
    reference's `np.random` calls draw for draw).
    """
    visible, thermal = [], []
    for _ in range(batches):
        for identity in rng.choice(identities, num_ids, replace=False):
            visible.append(rng.choice(visible_by_id[identity], num_instances))
            thermal.append(rng.choice(thermal_by_id[identity], num_instances))
    return np.concatenate(visible), np.concatenate(thermal)


class IdentitySampler(ds.Sampler):
    """Yields slots `epoch * len(self) + position`, P*K per batch; `pair_at` decodes them.

    Args:
        visible_ids: (Nv,) training labels of the visible images.
        thermal_ids: (Nt,) training labels of the thermal images.
        num_ids: P, identities per batch.
        num_instances: K, images per identity and modality.
        seed: base seed; epoch e uses the generator seeded by (seed, e).
        num_shards: split every batch into this many equal shares (data-parallel ranks).
        shard_id: which share this process yields.
    """

    def __init__(
        self,
        visible_ids,
        thermal_ids,
        num_ids: int,
        num_instances: int,
        seed: int = 0,
        num_shards: int = 1,
        shard_id: int = 0,
    ):
        self.visible_ids = np.asarray(visible_ids)
        self.thermal_ids = np.asarray(thermal_ids)
        self.identities = np.intersect1d(self.visible_ids, self.thermal_ids)
        if len(self.identities) < num_ids:
            raise DatasetError(
                f"the sampler needs {num_ids} identities with images in both modalities per batch "
                f"(loader.num_ids), but the training set has only {len(self.identities)}"
            )
        if (num_ids * num_instances) % num_shards:
            raise DatasetError(
                f"batch of {num_ids}x{num_instances} cannot be split into {num_shards} shards"
            )
        self.num_ids, self.num_instances = num_ids, num_instances
        self.seed, self.num_shards, self.shard_id = seed, num_shards, shard_id
        self.epoch = 0
        self._visible_by_id = {i: np.flatnonzero(self.visible_ids == i) for i in self.identities}
        self._thermal_by_id = {i: np.flatnonzero(self.thermal_ids == i) for i in self.identities}
        longest = max(len(self.visible_ids), len(self.thermal_ids))
        self.batches_per_epoch = longest // (num_ids * num_instances) + 1
        self._cached = {}
        super().__init__()  # reads len(self), so it comes last

    @property
    def batch_size(self) -> int:
        """Pairs per batch yielded by this shard."""
        return self.num_ids * self.num_instances // self.num_shards

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch `epoch` (used on resume)."""
        self.epoch = epoch

    def epoch_pairs(self, epoch: int):
        """(visible_index, thermal_index) arrays of every batch of `epoch`, for this shard."""
        visible, thermal = draw_batches(
            np.random.default_rng((self.seed, epoch)),
            self.identities,
            self._visible_by_id,
            self._thermal_by_id,
            self.num_ids,
            self.num_instances,
            self.batches_per_epoch,
        )
        share = slice(self.shard_id * self.batch_size, (self.shard_id + 1) * self.batch_size)
        per_batch = self.num_ids * self.num_instances
        return (
            visible.reshape(-1, per_batch)[:, share].ravel(),
            thermal.reshape(-1, per_batch)[:, share].ravel(),
        )

    def pair_at(self, slot: int):
        """(epoch, position, visible_index, thermal_index) of a slot yielded by iteration."""
        epoch, position = divmod(int(slot), len(self))
        if epoch not in self._cached:
            self._cached = {
                epoch: self.epoch_pairs(epoch),
                **{e: p for e, p in self._cached.items() if e == epoch - 1},
            }
        visible, thermal = self._cached[epoch]
        return epoch, position, int(visible[position]), int(thermal[position])

    def __iter__(self):
        start = self.epoch * len(self)
        self.epoch += 1
        return iter(range(start, start + len(self)))

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size
