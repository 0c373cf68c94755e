"""Which samples make up each batch: real/synthetic mixing, sharding across ranks, determinism.

What an epoch is, with synthetic data at ratio r and per-rank batch size B:
  - every batch holds exactly round(r * B) synthetic and B - round(r * B) real samples (a fixed
    share per batch, as in the EDM training recipe this paper follows, so no batch is all-real);
  - one epoch shows every real image once, across all ranks: it has
    floor(num_real / (real_per_batch * world_size)) steps, the few real images left over (fewer
    than one global batch, a different few each epoch) are dropped, like ``drop_last``;
  - synthetic images are drawn without replacement from a stream of fresh permutations of the
    synthetic set, continued from epoch to epoch, so a 1M-image set is cycled through over
    many epochs rather than re-sampled (epoch e takes the e-th slice of that stream); within an
    epoch they are distinct, except in an epoch that straddles the end of one pass and the start
    of the next.
So with r = 0.5 an epoch has twice the samples of a real-only epoch.

Sharding: rank k takes every world_size-th entry of the same global permutation; the shards are
disjoint and together cover the epoch once. Everything is a function of (seed, epoch, rank), so a
run resumed at an epoch boundary sees the same batches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastnst.cli import UsageError  # option values that cannot work: one line from the CLI, not a traceback


@dataclass(frozen=True)
class BatchPlan:
    indices: np.ndarray       # int64 (B,): row in the real or in the synthetic set
    is_synthetic: np.ndarray  # bool (B,)


class MixedSampler:
    def __init__(self, num_real: int, num_synthetic: int, batch_size: int, synthetic_ratio: float = 0.0,
                 rank: int = 0, world_size: int = 1, seed: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, world_size={world_size})")
        if not 0.0 <= synthetic_ratio < 1.0:
            raise UsageError(f"--synthetic-ratio must be in [0, 1), got {synthetic_ratio} (an epoch is defined by "
                             f"the real images, so some must be in every batch)")
        self.synthetic_per_batch = int(round(synthetic_ratio * batch_size))
        self.real_per_batch = batch_size - self.synthetic_per_batch
        if synthetic_ratio > 0 and self.synthetic_per_batch == 0:
            raise UsageError(f"--synthetic-ratio {synthetic_ratio} with batch size {batch_size} gives 0 synthetic "
                             f"samples per batch; raise one of them")
        if self.synthetic_per_batch and num_synthetic == 0:
            raise UsageError("--synthetic-ratio > 0 but the synthetic set is empty")
        if self.real_per_batch == 0:
            raise UsageError(f"--synthetic-ratio {synthetic_ratio} leaves no real sample in a batch of {batch_size}")
        self.num_real, self.num_synthetic = num_real, num_synthetic
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.steps_per_epoch = num_real // (self.real_per_batch * world_size)
        if self.steps_per_epoch == 0:
            raise UsageError(f"{num_real} real images are fewer than one global batch "
                             f"({self.real_per_batch} real x {world_size} ranks); lower --batch-size")

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _synthetic_stream(self, start: int, count: int) -> np.ndarray:
        """Entries start..start+count of the endless sequence of permutations of the synthetic set."""
        positions = np.arange(start, start + count, dtype=np.int64)
        blocks = positions // self.num_synthetic
        out = np.empty(count, dtype=np.int64)
        for block in np.unique(blocks):
            chosen = blocks == block
            permutation = np.random.default_rng([self.seed, 1, int(block)]).permutation(self.num_synthetic)
            out[chosen] = permutation[positions[chosen] % self.num_synthetic]
        return out

    def epoch(self, epoch: int) -> list[BatchPlan]:
        """This rank's batches of ``epoch``, in order."""
        steps, world = self.steps_per_epoch, self.world_size
        real_used = steps * self.real_per_batch * world
        real = np.random.default_rng([self.seed, 0, epoch]).permutation(self.num_real)[:real_used]
        real = real[self.rank::world].reshape(steps, self.real_per_batch)
        synthetic_used = steps * self.synthetic_per_batch * world
        synthetic = self._synthetic_stream(epoch * synthetic_used, synthetic_used)
        synthetic = synthetic[self.rank::world].reshape(steps, self.synthetic_per_batch)
        flags = np.concatenate([np.zeros(self.real_per_batch, bool), np.ones(self.synthetic_per_batch, bool)])
        # Interleave the two kinds within each batch so that no position in a batch is special.
        shuffle_rng = np.random.default_rng([self.seed, 2, epoch, self.rank])
        plans = []
        for step in range(steps):
            order = shuffle_rng.permutation(self.batch_size)
            indices = np.concatenate([real[step], synthetic[step]])[order]
            plans.append(BatchPlan(indices, flags[order]))
        return plans
