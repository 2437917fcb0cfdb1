"""Identity sampler invariants."""

import numpy as np
import pytest

from ddag.data.sampler import IdentitySampler
from ddag.errors import DatasetError


@pytest.fixture
def labels():
    rng = np.random.default_rng(1)
    visible = np.repeat(np.arange(10), rng.integers(2, 7, 10))
    thermal = np.repeat(np.arange(10), rng.integers(1, 5, 10))
    return visible, thermal


def test_batches_hold_p_identities_times_k_in_both_modalities(labels):
    visible, thermal = labels
    sampler = IdentitySampler(visible, thermal, num_ids=4, num_instances=3, seed=0)
    v_idx, t_idx = sampler.epoch_pairs(0)
    assert sampler.batches_per_epoch == max(len(visible), len(thermal)) // 12 + 1
    assert len(v_idx) == len(t_idx) == sampler.batches_per_epoch * 12 == len(sampler)
    for batch in range(sampler.batches_per_epoch):
        part = slice(batch * 12, (batch + 1) * 12)
        v_ids, t_ids = visible[v_idx[part]], thermal[t_idx[part]]
        np.testing.assert_array_equal(v_ids, t_ids)  # aligned by identity
        ids, counts = np.unique(v_ids, return_counts=True)
        assert len(ids) == 4 and set(counts) == {3}


def _decoded(sampler, slots):
    return np.array([sampler.pair_at(s) for s in slots])


def test_iteration_yields_slots_that_decode_to_the_epoch_pairs(labels):
    visible, thermal = labels
    sampler = IdentitySampler(visible, thermal, 4, 3, seed=0)
    first = _decoded(sampler, iter(sampler))
    v_idx, t_idx = sampler.epoch_pairs(0)
    np.testing.assert_array_equal(first[:, 0], 0)  # epoch
    np.testing.assert_array_equal(first[:, 1], np.arange(len(sampler)))  # position
    np.testing.assert_array_equal(first[:, 2], v_idx)
    np.testing.assert_array_equal(first[:, 3], t_idx)
    second = _decoded(sampler, iter(sampler))
    np.testing.assert_array_equal(second[:, 0], 1)
    assert not np.array_equal(first[:, 2], second[:, 2])


def test_deterministic_per_seed_and_epoch(labels):
    visible, thermal = labels
    a = IdentitySampler(visible, thermal, 4, 3, seed=5)
    b = IdentitySampler(visible, thermal, 4, 3, seed=5)
    c = IdentitySampler(visible, thermal, 4, 3, seed=6)
    np.testing.assert_array_equal(a.epoch_pairs(3)[0], b.epoch_pairs(3)[0])
    assert not np.array_equal(a.epoch_pairs(3)[0], c.epoch_pairs(3)[0])
    b.set_epoch(3)
    np.testing.assert_array_equal(_decoded(b, iter(b))[:, 2], a.epoch_pairs(3)[0])


def test_shards_split_each_batch(labels):
    visible, thermal = labels
    whole = IdentitySampler(visible, thermal, 4, 2, seed=0).epoch_pairs(0)[0]
    shards = [
        IdentitySampler(visible, thermal, 4, 2, seed=0, num_shards=2, shard_id=i).epoch_pairs(0)[0]
        for i in range(2)
    ]
    rebuilt = np.stack([s.reshape(-1, 4) for s in shards], axis=1).reshape(-1)
    np.testing.assert_array_equal(rebuilt, whole)


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(DatasetError, match="loader.num_ids"):
        IdentitySampler(np.array([0, 0, 1]), np.array([0, 1]), num_ids=3, num_instances=2)
