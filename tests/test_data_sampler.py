"""The mixing sampler: what an epoch is, the synthetic ratio, sharding, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from fastnst.train.data.sampler import MixedSampler


def _all(sampler: MixedSampler, epoch: int):
    plans = sampler.epoch(epoch)
    indices = np.concatenate([p.indices for p in plans])
    flags = np.concatenate([p.is_synthetic for p in plans])
    return indices, flags


@pytest.mark.parametrize("ratio, batch, expected_synthetic", [(0.5, 64, 32), (0.6, 50, 30), (0.3, 10, 3), (0.0, 16, 0)])
def test_every_batch_has_the_ratio_and_every_real_image_once(ratio, batch, expected_synthetic):
    sampler = MixedSampler(num_real=1000, num_synthetic=5000, batch_size=batch, synthetic_ratio=ratio, seed=3)
    real_per_batch = batch - expected_synthetic
    assert len(sampler) == 1000 // real_per_batch
    indices, flags = _all(sampler, epoch=2)
    for plan in sampler.epoch(2):
        assert plan.is_synthetic.sum() == expected_synthetic and len(plan.indices) == batch
    real = indices[~flags]
    assert len(np.unique(real)) == len(real) == len(sampler) * real_per_batch  # each real image at most once
    assert len(real) > 1000 - real_per_batch  # ... and all but the dropped remainder
    synthetic = indices[flags]
    assert len(np.unique(synthetic)) == len(synthetic)  # without replacement within the epoch


def test_synthetic_positions_are_spread_over_the_batch():
    """Statistical: no batch position is always real or always synthetic."""
    sampler = MixedSampler(2000, 2000, batch_size=20, synthetic_ratio=0.5, seed=0)
    flags = np.stack([p.is_synthetic for p in sampler.epoch(0)])  # (steps, 20)
    share_per_position = flags.mean(0)
    # 200 steps: a position's share is Binomial-like around 0.5 with sd ~0.035.
    assert np.all(np.abs(share_per_position - 0.5) < 0.15), share_per_position


def test_synthetic_set_is_cycled_through_before_repeating():
    sampler = MixedSampler(num_real=100, num_synthetic=250, batch_size=20, synthetic_ratio=0.5, seed=1)
    per_epoch = len(sampler) * 10  # 100 synthetic draws per epoch
    seen = np.concatenate([_all(sampler, e)[0][_all(sampler, e)[1]] for e in range(5)])  # 500 = 2 passes
    assert len(seen) == 5 * per_epoch
    assert sorted(seen[:250].tolist()) == list(range(250))
    assert sorted(seen[250:].tolist()) == list(range(250))


def test_same_seed_and_epoch_same_batches_other_epoch_differs():
    make = lambda: MixedSampler(500, 800, batch_size=32, synthetic_ratio=0.5, seed=7)
    a, b = make().epoch(4), make().epoch(4)
    for plan_a, plan_b in zip(a, b):
        np.testing.assert_array_equal(plan_a.indices, plan_b.indices)
        np.testing.assert_array_equal(plan_a.is_synthetic, plan_b.is_synthetic)
    assert not np.array_equal(a[0].indices, make().epoch(5)[0].indices)
    assert not np.array_equal(a[0].indices, MixedSampler(500, 800, 32, 0.5, seed=8).epoch(4)[0].indices)


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_and_cover_the_epoch(world_size):
    num_real, batch = 600, 20
    shards = [MixedSampler(num_real, 900, batch, 0.5, rank=r, world_size=world_size, seed=5) for r in range(world_size)]
    steps = {len(s) for s in shards}
    assert steps == {num_real // (10 * world_size)}  # same number of steps on every rank
    # Epoch 0 draws synthetic images 0..599 of the first pass over the 900 (epoch 1 straddles two passes).
    real_sets = [set(_all(s, 0)[0][~_all(s, 0)[1]].tolist()) for s in shards]
    synthetic_sets = [set(_all(s, 0)[0][_all(s, 0)[1]].tolist()) for s in shards]
    for i in range(world_size):
        for j in range(i + 1, world_size):
            assert not real_sets[i] & real_sets[j]
            assert not synthetic_sets[i] & synthetic_sets[j]
    covered = set().union(*real_sets)
    assert len(covered) == steps.pop() * 10 * world_size and len(covered) > num_real - 10 * world_size


def test_bad_arguments_say_which_flag():
    with pytest.raises(ValueError, match="--synthetic-ratio"):
        MixedSampler(100, 100, 8, synthetic_ratio=1.0)
    with pytest.raises(ValueError, match="0 synthetic samples per batch"):
        MixedSampler(100, 100, 8, synthetic_ratio=0.01)
    with pytest.raises(ValueError, match="synthetic set is empty"):
        MixedSampler(100, 0, 8, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match="--batch-size"):
        MixedSampler(10, 100, 64, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match="rank 2"):
        MixedSampler(100, 0, 8, rank=2, world_size=2)
