"""Which samples make up each batch: the authors' epoch of real and synthetic images, sharding, determinism.

An epoch is the authors' (``experiments/data.py:448-503`` and ``BalancedRatioSampler``,
``experiments/custom_datasets.py:355-389``, of github.com/Georgsiedel/model-based-data-augmentation
at 07e47c1), with N = the number of real images, ratio r and global batch size B:

  - it has N samples: a fresh random subset of ``N - int(N * r)`` real images and a fresh random
    subset of ``int(N * r)`` synthetic images, both drawn without replacement (``data.py:467-468,
    473-474, 484``), redrawn every epoch;
  - ``ceil(N / B)`` batches (``custom_datasets.py:388``); batch i holds the next
    ``B - int(B * r)`` real images, then the next ``int(B * r)`` synthetic ones
    (``custom_datasets.py:363-366, 380-384``), each slice clipped at the end of its subset.
    No shuffle inside a batch, as theirs (``custom_datasets.py:385`` is commented out): a block of
    real images then a block of synthetic ones, so the input noise's minibatches of 8 consecutive
    images stay single-source as in their runs.
So the last batch is short, and when ``int(B * r) / B`` is below r the real images run out
first: on TinyImageNet (r = 0.6, B = 256) the last 2 batches are all synthetic and 177 of the
60,000 drawn synthetic images are never shown. That tail is reproduced as it is: it changes no
distribution that matters, and keeping it keeps the step count (and the epoch-based learning
rate restarts defined on it) identical to theirs.

A synthetic pool smaller than ``int(N * r)`` (tests, demos) is drawn from as passes of fresh
permutations: without replacement as far as the pool allows.

Sharding (DDP): every rank computes the same global plan from (seed, epoch); rank k of W takes
every W-th sample of each global batch (so each rank's batch is again real block, then synthetic
block). A global batch whose size is not a multiple of W (only the last one, when B is one) is
padded by repeating its first samples, like DALI's ``pad_last_batch``: all ranks take the same
number of steps of the same size, and the shards are disjoint except for those few repeats.
Everything is a function of (seed, epoch) (and rank), so a run resumed at an epoch boundary sees
the same batches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fastnst.cli import UsageError  # option values that cannot work: one line from the CLI, not a traceback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPlan:
    indices: np.ndarray       # int64 (B,): row in the real or in the synthetic set
    is_synthetic: np.ndarray  # bool (B,)


class MixedSampler:
    """This rank's batches of each epoch (``epoch(e)``); ``batch_size`` is per rank."""

    def __init__(self, num_real: int, num_synthetic: int, batch_size: int, synthetic_ratio: float = 0.0,
                 rank: int = 0, world_size: int = 1, seed: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, world_size={world_size})")
        if not 0.0 <= synthetic_ratio < 1.0:
            raise UsageError(f"--synthetic-ratio must be in [0, 1), got {synthetic_ratio} (an epoch is defined by "
                             f"the real images, so some must be in every batch)")
        if num_real < 1:
            raise ValueError("the real training set is empty")
        self.global_batch_size = batch_size * world_size
        # The authors' expressions, in the same float arithmetic (custom_datasets.py:363-366, data.py:467-468).
        self.synthetic_per_batch = int(self.global_batch_size * synthetic_ratio)
        self.real_per_batch = self.global_batch_size - self.synthetic_per_batch
        self.synthetic_per_epoch = int(num_real * synthetic_ratio)
        self.real_per_epoch = num_real - self.synthetic_per_epoch
        if synthetic_ratio > 0 and self.synthetic_per_batch == 0:
            raise UsageError(f"--synthetic-ratio {synthetic_ratio} with batch size {self.global_batch_size} gives 0 "
                             f"synthetic samples per batch; raise one of them")
        if self.synthetic_per_batch and num_synthetic == 0:
            raise UsageError("--synthetic-ratio > 0 but the synthetic set is empty")
        self.num_real, self.num_synthetic = num_real, num_synthetic
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.steps_per_epoch = -(-num_real // self.global_batch_size)
        if self.synthetic_per_epoch > num_synthetic:
            log.warning("the synthetic set has %d images, fewer than the %d an epoch draws: images repeat within "
                        "an epoch", num_synthetic, self.synthetic_per_epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch_orders(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(real rows, synthetic rows) of ``epoch`` in the order they are served, before sharding.

        A random permutation's prefix is a random subset in random order: the authors' subset draw
        and their sampler's permutation of it in one step.
        """
        real = np.random.default_rng([self.seed, 0, epoch]).permutation(self.num_real)[:self.real_per_epoch]
        if self.synthetic_per_epoch == 0:
            return real, np.empty(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, 1, epoch])
        passes = -(-self.synthetic_per_epoch // self.num_synthetic)
        synthetic = np.concatenate([rng.permutation(self.num_synthetic) for _ in range(passes)])
        return real, synthetic[:self.synthetic_per_epoch]

    def global_batches(self, epoch: int) -> list[BatchPlan]:
        """All ranks' samples of each step of ``epoch``: real block, then synthetic block."""
        real, synthetic = self.epoch_orders(epoch)
        plans = []
        for step in range(self.steps_per_epoch):
            real_rows = real[step * self.real_per_batch:(step + 1) * self.real_per_batch]
            synthetic_rows = synthetic[step * self.synthetic_per_batch:(step + 1) * self.synthetic_per_batch]
            flags = np.concatenate([np.zeros(len(real_rows), bool), np.ones(len(synthetic_rows), bool)])
            plans.append(BatchPlan(np.concatenate([real_rows, synthetic_rows]).astype(np.int64), flags))
        return plans

    def epoch(self, epoch: int) -> list[BatchPlan]:
        """This rank's batches of ``epoch``, in order."""
        world, plans = self.world_size, []
        for plan in self.global_batches(epoch):
            size = len(plan.indices)
            keep = np.arange(-(-size // world) * world) % size  # pad to a multiple of world by wrapping around
            keep = keep[self.rank::world]
            plans.append(BatchPlan(plan.indices[keep], plan.is_synthetic[keep]))
        return plans
