"""The mixing sampler against a transcription of the authors' epoch: counts per batch and per epoch,
draws without replacement, the TinyImageNet tail, sharding, determinism."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from fastnst.train.data.sampler import MixedSampler


class AuthorsBalancedRatioSampler:
    """``experiments/custom_datasets.py:355-389`` at 07e47c1, as written (minus the torch Sampler base)."""

    def __init__(self, dataset, generated_ratio, batch_size):
        self.dataset = dataset
        self.batch_size = batch_size
        self.generated_ratio = generated_ratio
        self.size = len(dataset)

        self.num_generated = int(self.size * self.generated_ratio)
        self.num_original = self.size - self.num_generated
        self.num_generated_batch = int(self.batch_size * self.generated_ratio)
        self.num_original_batch = self.batch_size - self.num_generated_batch

    def __iter__(self):
        original_perm = torch.randperm(self.num_original)
        generated_perm = torch.randperm(self.num_generated) + self.num_original
        batch_starts = range(0, self.size, self.batch_size)
        for i, start in enumerate(batch_starts):
            original_indices = original_perm[min(i * self.num_original_batch, self.num_original) : min((i+1) * self.num_original_batch, self.num_original)]
            generated_indices = generated_perm[min(i * self.num_generated_batch, self.num_generated) : min((i+1) * self.num_generated_batch, self.num_generated)]
            batch_indices = torch.cat((original_indices, generated_indices))
            yield batch_indices.tolist()

    def __len__(self):
        return (self.size + self.batch_size - 1) // self.batch_size


def authors_epoch(num_real: int, num_pool: int, ratio: float, batch_size: int, seed: int):
    """The draws of ``load_augmented_traindata`` (``experiments/data.py:462-484``) and the batches of
    their sampler -> per batch a list of (is_synthetic, row), plus the drawn synthetic rows."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    num_generated = int(num_real * ratio)
    num_original = num_real - num_generated
    original_indices = torch.randperm(num_real)[:num_original]
    generated_indices = np.random.choice(num_pool, size=num_generated, replace=False)
    batches = []
    for batch in AuthorsBalancedRatioSampler(range(num_real), ratio, batch_size):
        batches.append([(False, int(original_indices[i])) if i < num_original else
                        (True, int(generated_indices[i - num_original])) for i in batch])
    return batches, generated_indices


def counts(batches):
    return [(sum(not s for s, _ in b), sum(s for s, _ in b)) for b in batches]


def our_batches(sampler: MixedSampler, epoch: int):
    return [list(zip(p.is_synthetic.tolist(), p.indices.tolist())) for p in sampler.epoch(epoch)]


@pytest.mark.parametrize("num_real, num_pool, ratio, batch", [
    (50_000, 1_000_000, 0.5, 256),   # config549/550: 196 batches, the last one 40 + 40
    (100_000, 1_000_000, 0.6, 256),  # config551: real images run out first, 177 drawn synthetic unused
    (1_000, 1_000, 0.5, 64),         # the demo
    (1_003, 5_000, 0.3, 10),         # int() rounding of both shares
    (500, 0, 0.0, 64),               # no synthetic data: a shuffled pass with a short last batch
])
def test_epoch_matches_the_authors_sampler(num_real, num_pool, ratio, batch):
    theirs, drawn = authors_epoch(num_real, num_pool, ratio, batch, seed=0)
    sampler = MixedSampler(num_real, num_pool, batch, ratio, seed=0)
    ours = our_batches(sampler, epoch=0)
    assert len(sampler) == len(ours) == len(theirs)
    assert counts(ours) == counts(theirs)  # the same real / synthetic count in every batch, tail included
    for batches in (ours, theirs):
        real = [row for b in batches for synthetic, row in b if not synthetic]
        synthetic = [row for b in batches for synthetic, row in b if synthetic]
        assert len(set(real)) == len(real) == num_real - int(num_real * ratio)  # a subset, without replacement
        assert len(set(synthetic)) == len(synthetic)
        for b in batches:  # a real block, then a synthetic block
            flags = [synthetic for synthetic, _ in b]
            assert flags == sorted(flags)
    unused = len(drawn) - sum(n for _, n in counts(theirs))
    assert unused == int(num_real * ratio) - sum(n for _, n in counts(ours))
    if (num_real, ratio) == (100_000, 0.6):
        assert unused == 177 and counts(ours)[-2:] == [(0, 153), (0, 153)] and counts(ours)[-3] == (36, 153)


def test_batches_are_the_authors_slices_of_the_epoch_orders(monkeypatch):
    """Given our epoch's draws, the authors' slicing (their sampler with identity permutations) gives our batches."""
    sampler = MixedSampler(1_000, 3_000, 48, 0.6, seed=4)
    real, synthetic = sampler.epoch_orders(epoch=2)
    rows = np.concatenate([real, synthetic])
    monkeypatch.setattr(torch, "randperm", lambda n: torch.arange(n))
    expected = [[(i >= len(real), int(rows[i])) for i in batch]
                for batch in AuthorsBalancedRatioSampler(range(1_000), 0.6, 48)]
    assert our_batches(sampler, epoch=2) == expected


def test_every_epoch_draws_fresh_subsets_and_is_reproducible():
    make = lambda seed=7: MixedSampler(500, 800, batch_size=32, synthetic_ratio=0.5, seed=seed)  # noqa: E731
    for plan_a, plan_b in zip(make().epoch(4), make().epoch(4)):
        np.testing.assert_array_equal(plan_a.indices, plan_b.indices)
        np.testing.assert_array_equal(plan_a.is_synthetic, plan_b.is_synthetic)
    real_4, synthetic_4 = make().epoch_orders(4)
    real_5, synthetic_5 = make().epoch_orders(5)
    assert set(real_4) != set(real_5) and set(synthetic_4) != set(synthetic_5)  # redrawn every epoch
    assert not np.array_equal(make().epoch(4)[0].indices, make(seed=8).epoch(4)[0].indices)


def test_a_small_synthetic_pool_is_used_in_full_passes(caplog):
    with caplog.at_level(logging.WARNING):
        sampler = MixedSampler(num_real=100, num_synthetic=30, batch_size=20, synthetic_ratio=0.5, seed=1)
    assert "fewer than the 50" in caplog.text
    _, synthetic = sampler.epoch_orders(0)
    assert sorted(synthetic[:30].tolist()) == list(range(30))  # a whole pass before any repeat
    assert len(set(synthetic[30:].tolist())) == 20


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_padded_and_cover_the_global_batches(world_size):
    num_real, per_rank = 601, 10
    sampler_all = MixedSampler(num_real, 900, per_rank * world_size, 0.5, seed=5)
    shards = [MixedSampler(num_real, 900, per_rank, 0.5, rank=r, world_size=world_size, seed=5)
              for r in range(world_size)]
    assert {len(s) for s in shards} == {len(sampler_all)}  # same steps on every rank
    global_batches = sampler_all.global_batches(0)
    for step, global_plan in enumerate(global_batches):
        parts = [shard.epoch(0)[step] for shard in shards]
        assert len({len(p.indices) for p in parts}) == 1  # same batch size on every rank
        served = [(s, i) for p in parts for s, i in zip(p.is_synthetic.tolist(), p.indices.tolist())]
        expected = set(zip(global_plan.is_synthetic.tolist(), global_plan.indices.tolist()))
        assert set(served) == expected  # together the global batch ...
        assert len(served) - len(expected) < world_size  # ... each sample once, but for the padding
        if len(global_plan.indices) % world_size == 0:  # no padding: each rank's batch is real, then synthetic
            assert len(served) == len(expected)
            assert all(p.is_synthetic.tolist() == sorted(p.is_synthetic.tolist()) for p in parts)


def test_bad_arguments_say_which_flag():
    with pytest.raises(ValueError, match="--synthetic-ratio"):
        MixedSampler(100, 100, 8, synthetic_ratio=1.0)
    with pytest.raises(ValueError, match="0 synthetic samples per batch"):
        MixedSampler(100, 100, 8, synthetic_ratio=0.01)
    with pytest.raises(ValueError, match="synthetic set is empty"):
        MixedSampler(100, 0, 8, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match="rank 2"):
        MixedSampler(100, 0, 8, rank=2, world_size=2)
